"""Load calibration profiles, at startup and for a hot reload, the same way.

``load_calibration`` reads every artifact ``CANDOR_CALIBRATION`` (or a reload's path)
names (format, version, fitted model), checks each one's pinned serving settings
against the server's (a difference that changes a signal is refused, naming each; the
chat template once the engine is up) and derives the settings the pins imply
(``adopt_pins``). Explicit paths are strict: any failure raises ``CalibrationError``;
the shipped ``builtin`` profiles are lenient: one that does not fit is skipped, and
why is kept. ``validate_reload`` turns a failure into ``ArtifactRejected`` (HTTP 400,
``param: path``); the caller keeps the active profiles. ``CandorState`` does the swap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from service.calibration.pinning import compare, serving_settings
from service.calibration.profiles import Profiles, load_profiles, parse_sources
from service.cascade.policy import UncalibratedModel
from service.config import Settings
from service.errors import ArtifactRejected, CalibrationError

if TYPE_CHECKING:
    from service.calibration.artifact import CalibratedModel

MAX_ARTIFACT_BYTES = 64 * 2**20
log = logging.getLogger(__name__)


def _reader(base: Settings) -> Callable[[Path], CalibratedModel]:
    from service.calibration.artifact import load_artifact

    def read(path: Path) -> CalibratedModel:
        try:
            if not path.exists():
                raise CalibrationError(f"cannot read calibration artifact {path}: no such file")
            if path.suffix != ".json" or not path.is_file():  # never /proc, devices or dirs
                raise CalibrationError(f"{path} is not a .json file")
            if path.stat().st_size > MAX_ARTIFACT_BYTES:
                raise CalibrationError(f"{path} is over 64 MiB; not a calibration artifact")
        except OSError as exc:
            raise CalibrationError(f"cannot read calibration artifact {path}: {exc}") from exc
        return load_artifact(path, expected_model=base.model_name,
                             fallback=(base.answer_threshold, base.abstain_threshold))
    return read


def pin_check(base: Settings, template: str | None) -> Callable[[CalibratedModel], None]:
    """Refuse an artifact whose signal settings differ from these (naming each); the chat
    template is compared only when the engine's is known (``template``)."""
    current = serving_settings(base, template)

    def check(model: CalibratedModel) -> None:
        refuse, warn = compare(model.spec.settings, current, check_template=template is not None)
        if refuse:
            raise CalibrationError(
                f"calibration artifact {model.id} (profile {model.spec.profile}) was fitted "
                f"under other serving settings; {'; '.join(refuse)}. Serve with the "
                "calibrated settings or recalibrate")
        for line in warn:
            log.warning("calibration %s: %s", model.id, line)
    return check


def adopt_pins(base: Settings, profiles: Profiles) -> Settings:
    """Requests without ``max_tokens`` get their profile's calibrated one (``Cascade``),
    unless CANDOR_DEFAULT_MAX_TOKENS was set; the limit makes room for it."""
    pins = sorted({m.spec.settings.answer_max_tokens for m in profiles.models.values()})
    if not pins:
        return base
    if "default_max_tokens" in base.model_fields_set:
        for m in profiles.models.values():
            if m.spec.settings.answer_max_tokens != base.default_max_tokens:
                log.warning("calibration %s: CANDOR_DEFAULT_MAX_TOKENS=%d differs from the "
                            "calibrated %d: requests without max_tokens carry no promise",
                            m.id, base.default_max_tokens, m.spec.settings.answer_max_tokens)
        return base
    update: dict[str, object] = {"max_tokens_limit": max(base.max_tokens_limit, pins[-1])}
    if len(pins) == 1:
        update["default_max_tokens"] = pins[0]
    return base.model_copy(update=update)


def load_calibration(base: Settings, value: str | None = None, template: str | None = None,
                     keep: Profiles | None = None) -> tuple[Profiles, Settings]:
    """The profiles ``value`` (default: CANDOR_CALIBRATION) names, and the settings their
    pins imply. ``keep``: profiles that stay unless a new artifact names the same one."""
    sources, strict = parse_sources(base.calibration if value is None else value)
    uncal = UncalibratedModel(base.answer_threshold, base.abstain_threshold)
    profiles = load_profiles(sources, strict, _reader(base), pin_check(base, template), uncal)
    for line in profiles.skipped:
        log.warning("shipped calibration profile not served: %s", line)
    for m in profiles.models.values():
        if m.spec.guarantee and not m.spec.default_supported:
            log.warning("calibration %s (profile %s): the default target risk %g is not "
                        "certified; requests that set no policy.target_risk abstain",
                        m.id, m.spec.profile, m.spec.default_alpha)
    if keep is not None:
        profiles = keep.replaced(profiles.models.values())
    return profiles, adopt_pins(base, profiles)


def validate_reload(path: Path | None, source: str, base: Settings, template: str | None,
                    active: Profiles) -> tuple[Profiles, Settings]:
    """A reload's new profiles: ``path`` (a file or a directory, strict) replaces the
    profiles it names and keeps the others; no path re-reads ``source`` whole."""
    try:
        if path is not None:
            return load_calibration(base, str(path), template, keep=active)
        return load_calibration(base, source, template)
    except CalibrationError as exc:
        raise ArtifactRejected(exc.message, param="path") from exc
