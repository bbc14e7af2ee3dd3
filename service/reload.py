"""Validate a calibration artifact for a hot reload, exactly as startup does (no swap here).

``validate_artifact`` reads and parses the file (format, version, fitted model), applies
the pins to the base settings (``check_pinned``, passed in: a mismatch in the serving
settings is refused, naming each), and, once an engine is up, compares its chat template.
Every failure becomes ``ArtifactRejected`` (HTTP 400 ``calibration_error``, ``param:
path``); the caller keeps the active artifact. ``CandorState.reload_calibration`` does the swap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from service.calibration.pinning import compare, serving_settings
from service.cascade.policy import ConfidenceModel
from service.config import Settings
from service.errors import ArtifactRejected, CalibrationError

MAX_ARTIFACT_BYTES = 64 * 2**20


def validate_artifact(path: Path, base: Settings, engine: object | None,
                      check_pinned: Callable[[Settings, ConfidenceModel], Settings],
                      ) -> tuple[ConfidenceModel, Settings]:
    """The loaded model and the settings ``check_pinned`` (``state.check_pinned``) derives
    from its pins, or ``ArtifactRejected`` saying why."""
    from service.calibration.artifact import load_artifact

    try:
        if path.suffix != ".json" or not path.is_file():  # never /proc, devices or dirs
            raise CalibrationError(f"{path} is not a .json file")
        if path.stat().st_size > MAX_ARTIFACT_BYTES:
            raise CalibrationError(f"{path} is over 64 MiB; not a calibration artifact")
        model = load_artifact(path, expected_model=base.model_name,
                              fallback=(base.answer_threshold, base.abstain_threshold))
        settings = check_pinned(base, model)
        spec = getattr(model, "spec", None)
        if spec is not None and engine is not None:
            template = getattr(engine, "chat_template_hash", None)
            refuse, _ = compare(spec.settings, serving_settings(settings, template))
            if refuse:
                raise CalibrationError(f"calibration artifact {model.id} does not match the "
                                       f"engine: {'; '.join(refuse)}")
    except (OSError, ValueError) as exc:
        raise ArtifactRejected(f"cannot read calibration artifact {path}: {exc}",
                               param="path") from exc
    except CalibrationError as exc:
        raise ArtifactRejected(exc.message, param="path") from exc
    return model, settings
