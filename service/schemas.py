"""Request and response models shared by the routers (the v1 API contract, docs/api.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from service.api_types import VALID_TEXT, Bool, Int, Number, Text
from service.vocab import MAX_STAGE, AbstainReason, Decision, OutOfScope, Task

# bounds before the text check, so pydantic's own string messages apply (api_types.py)
ProfileName = Annotated[str, StringConstraints(min_length=1, max_length=64), VALID_TEXT]


class _Strict(BaseModel):
    """A request body: no unknown field, and every scalar typed with ``service/api_types.py``
    (text the engine can take, strict integers and booleans, finite numbers)."""

    model_config = ConfigDict(extra="forbid")


class PolicyIn(_Strict):
    max_stage: Int | None = Field(default=None, ge=0, le=MAX_STAGE,
                                 description="Highest stage to run.")
    target_risk: Number | None = Field(
        default=None, gt=0, lt=1, description="Wanted error rate among answered questions."
    )
    budget_ms: Int | None = Field(default=None, ge=1, description="Deadline for this request.")
    answer_threshold: Number | None = Field(
        default=None, ge=0, le=1,
        description="Override: answer once confidence >= this. Voids the calibrated promise.",
    )
    abstain_threshold: Number | None = Field(
        default=None, ge=0, le=1,
        description="Override: abstain early when confidence < this (hopeless).",
    )
    run_all: Bool = Field(
        default=False,
        description="Run every stage up to max_stage, no early exit (calibration, analysis); "
        "the decision is taken on the final confidence, so no calibrated promise applies.",
    )
    profile: ProfileName | None = Field(
        default=None,
        description="Calibration profile to decide with (GET /v1/calibration lists them); "
        "unset: the profile covering the request's task.")
    out_of_scope: OutOfScope | None = Field(
        default=None,
        description="What a request outside every profile's scope gets: abstain (reason "
        "out_of_scope) or serve (the cascade decides as usual, nothing is promised); unset: "
        "CANDOR_OUT_OF_SCOPE (default abstain).")
    audit_rate: Number | None = Field(
        default=None, ge=0, le=1,
        description="Admin keys only (403 otherwise): raise this request's chance of joining "
        "the audit sample above CANDOR_AUDIT_RATE (never below it). The monitors and "
        "`calibrate --from-log` thin such decisions back to the server's rate, so a raised "
        "rate costs compute but cannot bias the sample.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> PolicyIn:
        lo, hi = self.abstain_threshold, self.answer_threshold
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("abstain_threshold must be <= answer_threshold")
        return self


class AnswerRequest(_Strict):
    question: Text = Field(min_length=1, description="The question to answer.")
    context: Text | None = Field(default=None,
                                 description="Optional passage the answer must fit.")
    system: Text | None = Field(default=None, description="Optional system prompt.")
    task: Task = "auto"
    max_tokens: Int | None = Field(default=None, ge=1)
    policy: PolicyIn = Field(default_factory=PolicyIn)
    return_samples: Bool = False
    return_logprobs: Bool = Field(
        default=False, description="Include the greedy answer's per-token log-probabilities."
    )
    claims: Bool = Field(
        default=False, description="Claims mode: split the answer into claims, each with its "
        "own confidence, and keep those the claim-level promise covers (docs/claims.md). "
        "Claims use the stage-1 samples when the request may reach stage 1.")

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question must not be blank")
        return v


class Signals(BaseModel):
    """Raw signal values (None when the stage that produces them did not run)."""

    token_entropy: float | None = None
    mean_logprob: float | None = None
    mean_nll: float | None = None
    min_token_prob: float | None = None
    n_tokens: int | None = None
    consistency: float | None = None
    n_clusters: int | None = None
    homogeneous: bool | None = None
    samples_drawn: int | None = Field(
        default=None, description="Stage-1 samples drawn (fewer than N when sampling stops early).")
    semantic_entropy: float | None = None
    mean_similarity: float | None = None
    p_true: float | None = None
    context_support: float | None = None


class StageReport(BaseModel):
    name: str
    stage: int
    confidence: float | None = Field(description="Confidence after this stage; None if skipped.")
    ms: float
    tokens: int
    informative: bool = True
    note: str | None = None


class Sample(BaseModel):
    text: str
    normalized: str
    cluster: int


class TokenLogprob(BaseModel):
    token: str
    logprob: float
    top_logprobs: list[float]


class ScopeReport(BaseModel):
    """The scope test of a request: is it drawn like the calibration questions of the
    profile that decided it? (docs/calibration.md, "Scope")."""

    tested: bool = Field(description="A scope test ran (false: no calibrated profile has one).")
    profile: str | None = Field(
        default=None, description="The profile tested: the one that accepted the request with "
        "the largest p-value, else the nearest one.")
    p_value: float | None = Field(
        default=None, description="Conformal p-value of the request (and its answer) against "
        "the profile's calibration questions.")
    level: float | None = Field(default=None, description="The profile's scope level: a "
                                "p-value below it is out of scope.")
    in_scope: bool | None = Field(
        default=None, description="p_value >= level; null when no test ran.")
    candidates: dict[str, float] = Field(
        default_factory=dict, description="Request-side p-value of each profile considered "
        "(routing picks the largest that passes).")

    @property
    def outcome(self) -> Literal["in", "out", "untested"]:
        """The test's verdict in one word (the metrics' label, the ``Candor-Scope`` header)."""
        if not self.tested or self.in_scope is None:
            return "untested"
        return "in" if self.in_scope else "out"


class CalibrationRef(BaseModel):
    calibrated: bool
    id: str | None = None
    profile: str | None = Field(default=None, description="Calibration profile that decided.")
    target_risk: float | None = Field(
        default=None, description="The risk promised for this answer; null: no promise applies.")
    delta: float | None = None
    threshold: float | None = None
    reason: str | None = Field(
        default=None, description="Why no promise applies (null when target_risk is set).")


class ClaimSignals(BaseModel):
    """A claim's raw signals (docs/claims.md)."""

    claim_mean_nll: float | None = Field(
        default=None, description="Mean negative log-likelihood of the greedy tokens of the "
        "claim's span (nats).")
    claim_min_token_prob: float | None = None
    claim_token_entropy: float | None = None
    claim_n_tokens: int = 0
    support: float | None = Field(
        default=None, description="Share of the stage-1 samples stating the same claim; null: "
        "no samples were drawn.")


class Claim(BaseModel):
    text: str
    span: tuple[int, int] = Field(description="[start, end) of the claim in `answer` "
                                  "(characters).")
    part: int | None = Field(default=None, description="The number of an enumerated part "
                             "(`2)` -> 2); null for sentences and bullets.")
    confidence: float = Field(ge=0, le=1)
    kept: bool = Field(description="The claim is in `claims.answer`.")
    signals: ClaimSignals


class ClaimsReport(BaseModel):
    """Claims mode (``claims: true``): the answer's claims and the claim-level promise."""

    items: list[Claim]
    answer: str = Field(description="The answer with only the kept claims (\"\": none kept).")
    splitter: str = Field(description="How the answer was split (rules: docs/claims.md).")
    calibrated: bool = Field(description="The claim confidences come from a calibrated claim "
                             "map.")
    id: str | None = Field(default=None, description="The claim calibration's id.")
    threshold: float | None = Field(default=None, description="Claims with confidence >= this "
                                    "are kept; null: every claim is kept.")
    target_risk: float | None = Field(
        default=None, description="The promise: with probability >= 1 - delta, at most this "
        "share of answers served this way keep a wrong claim. null: no claim-level promise.")
    delta: float | None = None
    reason: str | None = Field(default=None, description="Why no claim-level promise applies "
                               "(null when target_risk is set).")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AnswerResponse(BaseModel):
    id: str
    object: Literal["candor.answer"] = "candor.answer"
    model: str
    answer: str
    abstained: bool
    decision: Decision
    reason: AbstainReason | None = Field(default=None,
                                         description="Machine-readable abstention reason.")
    confidence: float = Field(ge=0, le=1)
    calibrated: bool
    stage_reached: int
    fallback: str | None = Field(
        default=None, description="Set when sampling evidence was uninformative (homogeneous)."
    )
    signals: Signals
    stages: list[StageReport]
    skipped: list[str] = Field(default_factory=list)
    calibration: CalibrationRef
    scope: ScopeReport
    audit: bool = Field(
        default=False, description="In the uniform audit sample: route it to a reviewer; its "
        "feedback is the unbiased label that recalibration and monitoring use.")
    audit_rate: float = Field(default=0.0, description="The audit rate this request was drawn at.")
    samples: list[Sample] | None = None
    logprobs: list[TokenLogprob] | None = None
    claims: ClaimsReport | None = Field(default=None, description="Claims mode only.")
    usage: Usage


class ScoreRequest(_Strict):
    question: Text = Field(min_length=1)
    answer: Text = Field(description="The answer to score.")
    samples: list[Text] | None = Field(default=None,
                                       description="Other answers to the question.")
    token_logprobs: list[Number] | None = Field(
        default=None, description="Log-probability of each token of the answer."
    )
    top_logprobs: list[list[Number]] | None = Field(
        default=None, description="Top-k log-probabilities at each token (for entropy)."
    )
    context: Text | None = None
    task: Task = "auto"
    profile: Text | None = Field(
        default=None, description="Calibration profile to score with; unset: the one "
        "covering the task.")


class ScoreResponse(BaseModel):
    object: Literal["candor.score"] = "candor.score"
    confidence: float | None
    calibrated: bool
    profile: str | None = Field(default=None, description="Calibration profile that scored.")
    scope: ScopeReport
    signals: Signals
    stages: list[StageReport]
    skipped: list[str]


class FeedbackRequest(_Strict):
    id: Text = Field(min_length=1)
    correct: Bool


class FeedbackResponse(BaseModel):
    id: str
    stored: bool
    audited: bool = Field(
        description="The decision was in the audit sample: this label is unbiased and counts "
        "for recalibration and monitoring; other labels are stored and reported apart.")


class ReloadRequest(_Strict):
    source: Annotated[str, StringConstraints(min_length=1, max_length=4096),
                      VALID_TEXT] | None = Field(
        default=None,
        description="What to serve, named as CANDOR_CALIBRATION names it: builtin (the shipped "
        "profiles that fit), none (no profile: uncalibrated), or .json artifacts and folders "
        "of them, comma-separated, inside CANDOR_CALIBRATION_DIR (relative paths start there). "
        "The active set becomes exactly what it names. Unset: re-read CANDOR_CALIBRATION.")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object) -> object:
        if isinstance(data, dict) and "path" in data:
            raise ValueError("'path' is now 'source' (builtin, none, or artifacts inside "
                             "CANDOR_CALIBRATION_DIR), and the reload serves exactly what it "
                             "names: nothing loaded before is kept")
        return data


class ReloadResponse(BaseModel):
    reloaded: bool = Field(
        description="The active set was swapped for the source's: true when a profile was "
        "added, removed, replaced or re-read unchanged; false only when no profile was active "
        "before and none is now (e.g. none on an uncalibrated server, or builtin with every "
        "shipped profile skipped).")
    changed: bool = Field(description="A profile was added, removed or replaced (artifact ids "
                          "differ).")
    source: str = Field(description="What was loaded: builtin, none, or the artifact files "
                        "read (resolved paths, comma-separated).")
    profiles: dict[str, str] = Field(description="The active set now: profile -> artifact id.")
    previous: dict[str, str] = Field(description="The active set before: profile -> artifact "
                                     "id.")
    added: list[str] = Field(description="Profiles served now and not before.")
    removed: list[str] = Field(description="Profiles served before and not now.")
    replaced: list[str] = Field(description="Profiles served before and now with another "
                                "artifact (ids: previous -> profiles).")
    unchanged: list[str] = Field(description="Profiles re-read with the same artifact id.")
    skipped: list[str] = Field(default_factory=list, description="Shipped profiles (builtin) "
                               "not served, and why.")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    owned_by: str = "candor"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    type: str
    message: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorBody
