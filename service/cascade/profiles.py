"""Which confidence model decides a request: the profiles served, and the choice.

A request picks ``policy.profile`` by name or falls to the profile whose ``tasks`` hold
its (resolved) task; an artifact with no ``tasks`` covers every task no other profile
claims. A request no profile covers is answered uncalibrated, and says so. With task
``auto``, every profile is a candidate and the scope tests choose (``routing.py``).
Where the profiles come from (``CANDOR_CALIBRATION``) is ``service/calibration/profiles.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from service.cascade.policy import ConfidenceModel, UncalibratedModel
from service.errors import BadRequest, CalibrationError
from service.vocab import no_promise

M = TypeVar("M", bound=ConfidenceModel, covariant=True)


@dataclass(frozen=True)
class Profiles(Generic[M]):
    """The profiles a server serves (immutable: a reload swaps in a new one)."""

    models: Mapping[str, M] = field(default_factory=dict)
    uncalibrated: UncalibratedModel = field(default_factory=lambda: UncalibratedModel(0.8, 0.2))
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        owner: dict[str, str] = {}
        catch_all = [name for name, m in self.models.items() if not m.tasks]
        if len(catch_all) > 1:
            raise CalibrationError(f"profiles {', '.join(catch_all)} all cover every task (no "
                                   "tasks): give each its tasks (`candor calibrate --tasks`)")
        for name, m in self.models.items():
            for task in m.tasks:
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
            if task in model.tasks:
                return model
        for model in self.models.values():
            if not model.tasks:
                return model
        if not self.models:
            return self.uncalibrated
        covered = "; ".join(f"{n}: {', '.join(m.tasks)}" for n, m in self.models.items())
        return UncalibratedModel(
            self.uncalibrated.answer_threshold, self.uncalibrated.abstain_threshold,
            reason=no_promise("uncalibrated", f"no calibration profile covers task {task!r} "
                              f"(profiles: {covered}); the confidence is a raw score and no "
                              "error rate is promised"))

    def candidates(self, profile: str | None, task: str) -> list[ConfidenceModel]:
        """The models that may decide a request: its named profile; else, for ``auto``,
        every profile (the scope tests choose, ``cascade/routing.py``); else the one
        covering ``task``."""
        if profile is not None or task != "auto" or not self.models:
            return [self.for_request(profile, task)]
        return list(self.models.values())
