"""Typed Python client for Candor: ``CandorClient`` (sync), ``AsyncCandorClient`` (asyncio).

    from candor_client import CandorClient
    with CandorClient("http://127.0.0.1:8000") as candor:
        ans = candor.answer("What is the capital of France?")
        if ans.abstained: ...  # route to a human
"""

from candor_client.async_client import AsyncCandorClient
from candor_client.client import CandorClient
from candor_client.errors import (
    BadRequestError,
    CandorAPIError,
    CandorConnectionError,
    CandorError,
    CandorTimeoutError,
    DeadlineExceededError,
    InternalServerError,
    NotFoundError,
    OverloadedError,
    UnauthorizedError,
    UnavailableError,
)
from candor_client.models import (
    AbstentionReport,
    Answer,
    Calibration,
    CalibrationClaims,
    CalibrationMap,
    CalibrationProfile,
    CalibrationRef,
    CalibrationScope,
    DriftBins,
    DriftReport,
    DriftWindow,
    FeedbackResult,
    Health,
    Policy,
    PromiseReport,
    PromiseStatus,
    ReloadResult,
    ScopeReport,
    Score,
    ServingSettings,
    Signals,
    StageReport,
    ThresholdEntry,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "AbstentionReport", "Answer", "AsyncCandorClient", "BadRequestError", "Calibration",
    "CalibrationClaims", "CalibrationMap", "CalibrationProfile", "CalibrationRef",
    "CalibrationScope",
    "CandorAPIError", "CandorClient", "CandorConnectionError", "CandorError",
    "CandorTimeoutError", "DeadlineExceededError", "DriftBins", "DriftReport", "DriftWindow",
    "FeedbackResult", "Health", "InternalServerError", "NotFoundError", "OverloadedError",
    "Policy", "PromiseReport", "PromiseStatus", "ReloadResult", "ScopeReport", "Score",
    "ServingSettings", "Signals", "StageReport", "ThresholdEntry", "UnauthorizedError",
    "UnavailableError", "Usage", "__version__",
]
