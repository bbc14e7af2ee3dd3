"""Typed responses of the Candor v1 API (the server's ``service/schemas.py``, client side).

Every model keeps unknown fields (``extra="allow"``), so a newer server never breaks an
older client; ``Policy`` is the one request model, strict so typos fail before sending.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Policy(BaseModel):
    """Per-request cascade policy (all optional; the server's defaults apply)."""

    model_config = ConfigDict(extra="forbid")

    max_stage: int | None = Field(default=None, ge=0, le=3)
    target_risk: float | None = Field(default=None, gt=0, lt=1)
    budget_ms: int | None = Field(default=None, ge=1)
    answer_threshold: float | None = Field(default=None, ge=0, le=1)
    abstain_threshold: float | None = Field(default=None, ge=0, le=1)
    run_all: bool = False
    profile: str | None = Field(default=None, min_length=1, max_length=64)
    audit_rate: float | None = Field(default=None, ge=0, le=1)


class Signals(_Model):
    token_entropy: float | None = None
    mean_logprob: float | None = None
    mean_nll: float | None = None
    min_token_prob: float | None = None
    n_tokens: int | None = None
    consistency: float | None = None
    n_clusters: int | None = None
    homogeneous: bool | None = None
    samples_drawn: int | None = None
    semantic_entropy: float | None = None
    mean_similarity: float | None = None
    p_true: float | None = None
    context_support: float | None = None


class StageReport(_Model):
    name: str
    stage: int
    confidence: float | None = None
    ms: float
    tokens: int
    informative: bool = True
    note: str | None = None


class Sample(_Model):
    text: str
    normalized: str
    cluster: int


class TokenLogprob(_Model):
    token: str
    logprob: float
    top_logprobs: list[float]


class CalibrationRef(_Model):
    """Which calibration decided and what it promises (``target_risk`` null: no promise,
    ``reason`` says why)."""

    calibrated: bool
    id: str | None = None
    profile: str | None = None
    target_risk: float | None = None
    delta: float | None = None
    threshold: float | None = None
    reason: str | None = None


class Usage(_Model):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Answer(_Model):
    """``POST /v1/answer``: the answer, its confidence, and whether Candor abstained."""

    id: str
    object: Literal["candor.answer"] = "candor.answer"
    model: str
    answer: str
    abstained: bool
    decision: Literal["answer", "abstain"]
    reason: str | None = None
    confidence: float
    calibrated: bool
    stage_reached: int
    fallback: str | None = None
    signals: Signals
    stages: list[StageReport]
    skipped: list[str] = Field(default_factory=list)
    calibration: CalibrationRef
    audit: bool = False
    audit_rate: float = 0.0
    samples: list[Sample] | None = None
    logprobs: list[TokenLogprob] | None = None
    usage: Usage


class Score(_Model):
    """``POST /v1/score``: signals and confidence for an answer the caller already has."""

    object: Literal["candor.score"] = "candor.score"
    confidence: float | None
    calibrated: bool
    profile: str | None = None
    signals: Signals
    stages: list[StageReport]
    skipped: list[str] = Field(default_factory=list)


class FeedbackResult(_Model):
    """``POST /v1/feedback``: whether the label was stored, and whether it is an audit
    label (unbiased: it counts for recalibration and monitoring)."""

    id: str
    stored: bool
    audited: bool = False


class PromiseStatus(_Model):
    """One profile's artifact watched live: its promise's verdict on audited labels."""

    profile: str
    calibration_id: str
    active: bool
    verdict: Literal["unverified", "holding", "breached"]
    target_risk: float | None = None
    labelled: int | None = None
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None


class Calibration(_Model):
    """``GET /v1/calibration``: the profiles served (``calibrated=False`` if none).

    ``calibrations``: each profile's artifact summary and promise; ``skipped``: shipped
    profiles not served and why.
    The summary's other fields (id, target risk, thresholds, held-out metrics) are kept
    as extra fields: read them with ``model_extra`` or ``model_dump()``. ``profiles``: the
    live verdict per profile and artifact (drift and per-target-risk detail as extras).
    """

    calibrated: bool
    calibrations: list[dict[str, Any]] = []
    skipped: list[str] = []
    profiles: list[PromiseStatus] = []


class Health(_Model):
    """``/healthz`` + ``/readyz``: the process is up; the engine is ready (and why not)."""

    live: bool
    ready: bool
    model: str | None = None
    detail: str | None = None


def payload(**fields: Any) -> dict[str, Any]:
    """A JSON body without the fields left unset (``None``), so server defaults apply."""
    return {k: v for k, v in fields.items() if v is not None}
