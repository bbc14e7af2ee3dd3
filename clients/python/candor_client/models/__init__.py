"""Typed responses of the Candor v1 API (the server's ``service/schemas.py``, client side).

Every response model keeps unknown fields (``extra="allow"``), so a newer server never
breaks an older client; ``Policy`` is the one request model, strict so typos fail before
sending. ``tests/unit/client_drift.py`` (in the server's repository) holds these models
equal to the server's schema, field by field.
"""

from candor_client.models._base import Model, payload
from candor_client.models.answers import (
    AbstainReason,
    Answer,
    CalibrationRef,
    Claim,
    Claims,
    ClaimSignals,
    FeedbackResult,
    Health,
    Policy,
    Sample,
    ScopeReport,
    Score,
    Signals,
    StageReport,
    TokenLogprob,
    Usage,
)
from candor_client.models.calibration import (
    AbstentionReport,
    Calibration,
    CalibrationClaims,
    CalibrationMap,
    CalibrationProfile,
    CalibrationScope,
    DriftBins,
    DriftReport,
    DriftWindow,
    LabelSource,
    MonitorFreshness,
    MonitorSource,
    PromiseReport,
    PromiseStatus,
    ReloadResult,
    ScopeComponent,
    ServingSettings,
    ThresholdEntry,
    Verdict,
)

__all__ = [
    "AbstainReason", "AbstentionReport", "Answer", "Calibration", "CalibrationMap",
    "CalibrationClaims", "CalibrationProfile", "CalibrationRef", "CalibrationScope", "Claim",
    "Claims", "ClaimSignals",
    "DriftBins", "DriftReport",
    "DriftWindow", "FeedbackResult", "Health", "LabelSource", "Model", "MonitorFreshness",
    "MonitorSource", "Policy",
    "PromiseReport", "PromiseStatus", "ReloadResult", "Sample", "ScopeComponent",
    "ScopeReport", "Score", "ServingSettings", "Signals", "StageReport", "ThresholdEntry",
    "TokenLogprob", "Usage", "Verdict", "payload",
]
