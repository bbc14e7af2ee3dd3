"""The artifact's ``claims`` section, and the ``ClaimCalibration`` the server runs from it.

Fitted by ``claim_fit.py``; read by ``artifact.py`` without scikit-learn (the map is a
``StageMap``, numpy only). ``service/claims/assess.py`` serves the ``ClaimCalibration``:
claims whose map confidence is at or above ``threshold`` are kept, and at most ``alpha``
of answers served this way keep a wrong claim, with probability >= 1 - delta.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from service.calibration.maps import StageMap
from service.claims.assess import ClaimCalibration

DEFAULT_CLAIM_ALPHA = 0.1  # the claim target risk ``candor calibrate --claims-alpha`` fixes

class ClaimSpec(BaseModel):
    """The artifact's ``claims`` section (module docstring)."""

    splitter: str = Field(description="the splitter the claims were collected with")
    map: dict[str, Any] = Field(description="the claim map (a StageMap as JSON)")
    selection: dict[str, Any] | None = None
    alpha: float = Field(gt=0, lt=1, description="claim target risk, fixed before fitting")
    threshold: float | None = Field(ge=0, le=1, description="null: none certified")
    test: dict[str, Any] = Field(default_factory=dict)
    min_stage: int = Field(ge=0, description="the stage whose samples the map reads")
    feasibility: dict[str, Any] = Field(default_factory=dict)
    heldout: dict[str, Any] = Field(default_factory=dict)

    def stage_map(self) -> StageMap:
        return StageMap(**self.map)

    def calibration(self, artifact_id: str, delta: float) -> ClaimCalibration:
        m = self.stage_map()
        return ClaimCalibration(artifact_id, m, tuple(m.features), self.threshold, self.alpha,
                                delta, self.min_stage, self.splitter)
