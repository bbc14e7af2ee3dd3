"""``GET /v1/calibration``: every calibration profile served and its promise, or "uncalibrated"."""

from __future__ import annotations

import time

from fastapi import APIRouter

from service.api.deps import StateDep
from service.api.errors import documented_errors
from service.calibration.served import CalibrationResponse
from service.monitoring.refresh import freshness

router = APIRouter(prefix="/v1", tags=["calibration"], responses=documented_errors())

SEVERAL = ("several calibration profiles: each request is decided by the one covering its "
           "task, or the one named in policy.profile; a task no profile covers is answered "
           "uncalibrated")
UNCALIBRATED = ("no calibration artifact loaded (CANDOR_CALIBRATION names artifacts written by "
                "`candor calibrate`, or `builtin` for the shipped profiles); confidences are "
                "uncalibrated scores and carry no risk guarantee")


@router.get("/calibration", response_model=CalibrationResponse)
async def calibration(state: StateDep) -> CalibrationResponse:
    """What the server promises, per profile (`calibrations`: artifact id, the tasks it
    covers, delta and the supported target risks), which shipped profiles are not served
    and why (`skipped`), and per profile and artifact the live watch (`profiles`):
    labelled audited answers, the realised risk with anytime-valid bounds, the verdict
    (unverified | holding | breached), the abstention rate and input drift, and how fresh
    this replica's view of it is (`monitors`). With exactly one profile its description
    is also at the top level."""
    profiles = state.profiles
    described = [m.describe() for m in profiles.models.values()]
    common = {"serving": state.serving().model_dump(), "calibrations": described,
              "skipped": list(profiles.skipped),
              "profiles": state.monitoring.report() if state.monitoring is not None else [],
              "monitors": freshness(state.monitor_refresh, time.time())}
    if len(described) == 1:
        return CalibrationResponse.model_validate({**described[0], **common})
    if described:
        return CalibrationResponse.model_validate(
            {"calibrated": True, "id": None, **common, "message": SEVERAL})
    s = state.settings
    return CalibrationResponse.model_validate(
        {"calibrated": False, "id": None, **common, "message": UNCALIBRATED,
         "answer_threshold": s.answer_threshold, "abstain_threshold": s.abstain_threshold})
