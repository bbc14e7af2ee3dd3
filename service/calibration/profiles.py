"""Calibration profiles: several artifacts served at once, each covering some tasks.

``CANDOR_CALIBRATION`` names where the artifacts come from:

* ``builtin`` (the default): the profiles shipped in this package (``profiles/``:
  ``math`` and ``factual``, fitted on the embedded model). They apply only where they
  fit: a server whose model or signal settings differ from a shipped profile's pins
  serves without it, logs why, and reports it under ``skipped`` in ``GET /v1/calibration``.
* ``none``: no calibration (every answer says ``uncalibrated``).
* one or more paths, comma-separated, each a ``.json`` artifact or a directory of them:
  strict, a bad or mismatched artifact stops the server with a message naming it.

A request picks ``policy.profile`` by name or falls to the profile whose ``tasks`` hold
its (resolved) task; an artifact with no ``tasks`` covers every task no other profile
claims. A request no profile covers is answered uncalibrated, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from service.cascade.policy import ConfidenceModel, UncalibratedModel
from service.errors import BadRequest, CalibrationError

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


@dataclass(frozen=True)
class Profiles:
    """The profiles a server serves (immutable: a reload swaps in a new one)."""

    models: Mapping[str, CalibratedModel] = field(default_factory=dict)
    uncalibrated: UncalibratedModel = field(default_factory=lambda: UncalibratedModel(0.8, 0.2))
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        owner: dict[str, str] = {}
        catch_all = [name for name, m in self.models.items() if not m.spec.tasks]
        if len(catch_all) > 1:
            raise CalibrationError(f"profiles {', '.join(catch_all)} all cover every task (no "
                                   "tasks): give each its tasks (`candor calibrate --tasks`)")
        for name, m in self.models.items():
            for task in m.spec.tasks:
                if task in owner:
                    raise CalibrationError(f"task {task!r} is covered by two profiles, "
                                           f"{owner[task]} and {name}")
                owner[task] = name

    def for_request(self, profile: str | None, task: str) -> ConfidenceModel:
        """The model for a request: its named profile, else the one covering ``task``."""
        if profile is not None:
            model = self.models.get(profile)
            if model is None:
                have = ", ".join(self.models) or "none"
                raise BadRequest(f"unknown calibration profile {profile!r} (this server has: "
                                 f"{have})", param="policy.profile")
            return model
        for model in self.models.values():
            if task in model.spec.tasks:
                return model
        for model in self.models.values():
            if not model.spec.tasks:
                return model
        if not self.models:
            return self.uncalibrated
        covered = "; ".join(f"{n}: {', '.join(m.spec.tasks)}" for n, m in self.models.items())
        return UncalibratedModel(
            self.uncalibrated.answer_threshold, self.uncalibrated.abstain_threshold,
            reason=f"uncalibrated: no calibration profile covers task {task!r} (profiles: "
            f"{covered}); the confidence is a raw score and no error rate is promised")

    def candidates(self, profile: str | None, task: str) -> list[ConfidenceModel]:
        """The models that may decide a request: its named profile; else, for ``auto``,
        every profile (the scope tests choose, ``cascade/routing.py``); else the one
        covering ``task``."""
        if profile is not None or task != "auto" or not self.models:
            return [self.for_request(profile, task)]
        return list(self.models.values())


def load_profiles(sources: list[str], strict: bool, load: Callable[[Path], CalibratedModel],
                  check: Callable[[CalibratedModel], None],
                  uncalibrated: UncalibratedModel) -> Profiles:
    """Read every artifact of ``sources``; ``check`` raises ``CalibrationError`` on a
    mismatch with the serving settings. Strict: any failure stops startup; lenient
    (builtin): the profile is skipped and the reason kept."""
    models: dict[str, CalibratedModel] = {}
    skipped: list[str] = []
    for source in sources:
        for path in artifact_files(source):
            try:
                model = load(path)
                check(model)
            except CalibrationError as exc:
                if strict:
                    raise
                skipped.append(f"{path.name}: {exc.message}")
                continue
            name = model.spec.profile
            if name in models:
                raise CalibrationError(f"two artifacts name profile {name!r} ({path} and "
                                       f"{models[name].id})")
            models[name] = model
    return Profiles(models, uncalibrated, tuple(skipped))
