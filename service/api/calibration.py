"""``GET /v1/calibration``: the active calibration artifact and its promise, or "uncalibrated"."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.deps import StateDep
from service.api.errors import documented_errors

router = APIRouter(prefix="/v1", tags=["calibration"], responses=documented_errors())


@router.get("/calibration")
async def calibration(state: StateDep) -> dict[str, Any]:
    """What the server promises: the artifact's id, delta and supported target risks, and
    per profile and artifact the live watch (``profiles``): labelled audited answers, the
    realised risk with anytime-valid bounds, the verdict (unverified | holding | breached),
    the abstention rate and input drift."""
    describe = getattr(state.model, "describe", None)
    serving = state.serving().model_dump()
    live = state.monitoring.report() if state.monitoring is not None else []
    if state.model.calibrated and callable(describe):
        out: dict[str, Any] = describe()
        return {**out, "serving": serving, "profiles": live}
    s = state.settings
    return {
        "calibrated": False, "id": None, "serving": serving,
        "message": "no calibration artifact loaded (set CANDOR_CALIBRATION to one written by "
                   "`candor calibrate`); confidences are uncalibrated scores and carry no "
                   "risk guarantee",
        "answer_threshold": s.answer_threshold, "abstain_threshold": s.abstain_threshold,
        "profiles": live,
    }
