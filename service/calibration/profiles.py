"""Where the calibration profiles come from: several artifacts served at once.

``CANDOR_CALIBRATION`` names where the artifacts come from:

* ``builtin`` (the default): the profiles shipped in this package (``profiles/``:
  ``math`` and ``factual``, fitted on the embedded model). They apply only where they
  fit: a server whose model or signal settings differ from a shipped profile's pins
  serves without it, logs why, and reports it under ``skipped`` in ``GET /v1/calibration``.
* ``none``: no calibration (every answer says ``uncalibrated``).
* one or more paths, comma-separated, each a ``.json`` artifact or a directory of them:
  strict, a bad or mismatched artifact stops the server with a message naming it.

Which profile decides a request is the cascade's choice (``service/cascade/profiles.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from service.cascade.policy import UncalibratedModel
from service.cascade.profiles import Profiles
from service.errors import CalibrationError

if TYPE_CHECKING:
    from service.calibration.artifact import CalibratedModel

BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"
BUILTIN, NONE = "builtin", "none"


def artifact_files(source: str | Path) -> list[Path]:
    """The ``.json`` artifacts ``source`` names (a file, or the files of a directory)."""
    path = BUILTIN_DIR if str(source) == BUILTIN else Path(source)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if p.is_file())
        if not files and path != BUILTIN_DIR:
            raise CalibrationError(f"no calibration artifacts (*.json) in {path}")
        return files
    return [path]


def parse_sources(value: str | None) -> tuple[list[str], bool]:
    """(sources, strict) from ``CANDOR_CALIBRATION``: builtin is lenient, paths are strict."""
    raw = [s.strip() for s in (value or NONE).split(",") if s.strip()]
    if raw in ([], [NONE]):
        return [], True
    if raw == [BUILTIN]:
        return [BUILTIN], False
    if BUILTIN in raw or NONE in raw:
        raise CalibrationError("CANDOR_CALIBRATION is 'builtin', 'none' or a list of artifact "
                               f"paths, not a mix: {value!r}")
    return raw, True


Check = Callable[["CalibratedModel"], None]  # raises CalibrationError on a mismatch


def screen(models: Iterable[tuple[str, CalibratedModel]], check: Check,
           strict: bool) -> tuple[list[CalibratedModel], list[str]]:
    """The models that pass ``check``, and why each other one is not served (``where``:
    message). Strict (named paths): the first failure raises; lenient (builtin): skipped."""
    kept: list[CalibratedModel] = []
    skipped: list[str] = []
    for where, model in models:
        try:
            check(model)
        except CalibrationError as exc:
            if strict:
                raise
            skipped.append(f"{where}: {exc.message}")
            continue
        kept.append(model)
    return kept, skipped


def load_profiles(sources: list[str], strict: bool, load: Callable[[Path], CalibratedModel],
                  check: Check, uncalibrated: UncalibratedModel) -> Profiles[CalibratedModel]:
    """Read every artifact of ``sources`` and ``screen`` it against the serving settings."""
    models: dict[str, CalibratedModel] = {}
    skipped: list[str] = []
    for source in sources:
        for path in artifact_files(source):
            try:
                kept, refused = screen([(path.name, load(path))], check, strict)
            except CalibrationError as exc:  # unreadable (a mismatch raised only if strict)
                if strict:
                    raise
                kept, refused = [], [f"{path.name}: {exc.message}"]
            skipped += refused
            for model in kept:
                name = model.spec.profile
                if name in models:
                    raise CalibrationError(f"two artifacts name profile {name!r} ({path} and "
                                           f"{models[name].id})")
                models[name] = model
    return Profiles(models, uncalibrated, tuple(skipped))
