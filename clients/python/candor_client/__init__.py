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
    Answer,
    Calibration,
    CalibrationProfile,
    CalibrationRef,
    CalibrationScope,
    FeedbackResult,
    Health,
    Policy,
    PromiseStatus,
    ScopeReport,
    Score,
    Signals,
    StageReport,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "Answer", "AsyncCandorClient", "BadRequestError", "Calibration", "CalibrationProfile",
    "CalibrationRef", "CalibrationScope", "CandorAPIError", "CandorClient",
    "CandorConnectionError", "CandorError", "CandorTimeoutError", "DeadlineExceededError",
    "FeedbackResult", "Health", "InternalServerError", "NotFoundError", "OverloadedError",
    "Policy", "PromiseStatus", "ScopeReport", "Score", "Signals", "StageReport",
    "UnauthorizedError", "UnavailableError", "Usage", "__version__",
]
