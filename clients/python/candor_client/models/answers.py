"""The request policy and the answer, score, feedback and health responses."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from candor_client.models._base import Model as _Model

# why an answer was withheld (the server's service/vocab.py)
AbstainReason = Literal["low_confidence", "hopeless", "empty_answer", "deadline",
                        "out_of_scope"]


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
    out_of_scope: Literal["abstain", "serve"] | None = None
    audit_rate: float | None = Field(default=None, ge=0, le=1)  # admin keys only


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


class ScopeReport(_Model):
    """The request's scope test: is it drawn like the calibration questions of the
    profile that decided it? Out of scope (``in_scope`` false), no risk is promised.

    ``tested`` false: no scope test ran (uncalibrated, or an artifact without one; also
    what an older server, which sends no ``scope``, reads as). ``p_value`` below ``level``
    is out of scope; ``candidates``: the request-side p-value of each profile considered.
    """

    tested: bool
    profile: str | None = None
    p_value: float | None = None
    level: float | None = None
    in_scope: bool | None = None
    candidates: dict[str, float] = Field(default_factory=dict)


def _untested() -> ScopeReport:
    return ScopeReport(tested=False)


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


class ClaimSignals(_Model):
    """A claim's raw signals: its own greedy tokens, and ``support`` (the share of the
    stage-1 samples stating it; None: no samples were drawn)."""

    claim_mean_nll: float | None = None
    claim_min_token_prob: float | None = None
    claim_token_entropy: float | None = None
    claim_n_tokens: int = 0
    support: float | None = None


class Claim(_Model):
    """One claim of the answer: ``answer[span[0]:span[1]] == text``; ``kept``: it is in
    ``Claims.answer``."""

    text: str
    span: tuple[int, int]
    part: int | None = None
    confidence: float
    kept: bool
    signals: ClaimSignals


class Claims(_Model):
    """Claims mode (``answer(..., claims=True)``): the claims, the answer with only the kept
    ones, and the claim-level promise (``target_risk`` None: none; ``reason`` says why)."""

    items: list[Claim]
    answer: str
    splitter: str
    calibrated: bool
    id: str | None = None
    threshold: float | None = None
    target_risk: float | None = None
    delta: float | None = None
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
    reason: AbstainReason | None = None
    confidence: float
    calibrated: bool
    stage_reached: int
    fallback: str | None = None
    signals: Signals
    stages: list[StageReport]
    skipped: list[str] = Field(default_factory=list)
    calibration: CalibrationRef
    scope: ScopeReport = Field(default_factory=_untested)
    audit: bool = False
    audit_rate: float = 0.0
    samples: list[Sample] | None = None
    logprobs: list[TokenLogprob] | None = None
    claims: Claims | None = None
    usage: Usage


class Score(_Model):
    """``POST /v1/score``: signals and confidence for an answer the caller already has."""

    object: Literal["candor.score"] = "candor.score"
    confidence: float | None
    calibrated: bool
    profile: str | None = None
    scope: ScopeReport = Field(default_factory=_untested)
    signals: Signals
    stages: list[StageReport]
    skipped: list[str] = Field(default_factory=list)


class FeedbackResult(_Model):
    """``POST /v1/feedback``: whether the label was stored, and whether it is an audit
    label (unbiased: it counts for recalibration and monitoring)."""

    id: str
    stored: bool
    audited: bool = False


class Health(_Model):
    """``/healthz`` + ``/readyz``: the process is up; the engine is ready (and why not)."""

    live: bool
    ready: bool
    model: str | None = None
    detail: str | None = None
