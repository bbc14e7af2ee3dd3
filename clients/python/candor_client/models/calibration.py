"""``GET /v1/calibration`` (the profiles served, their promises, the live watch) and the
reply of ``POST /v1/admin/calibration/reload``.

A field the server always sends may read ``None`` here when absent, so a client parses an
older server's reply; a field the server sends only in some cases (``message``, the
one-profile summary at the top level) is ``None`` when it was not sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from candor_client.models._base import Model

Verdict = Literal["unverified", "holding", "breached"]
ScopeComponent = Literal["similarity", "question_length", "answer_length"]
LabelSource = Literal["dataset", "audit", "self-selected"]
MonitorSource = Literal["shared_log", "local"]


class ServingSettings(Model):
    """The serving settings the signals depend on: what an artifact pins (``settings``)
    and what the server runs now (``serving``)."""

    model: str
    dtype: str
    samples_n: int
    sample_temperature: float
    sample_max_tokens: int
    samples_adaptive: bool = False
    samples_round: int = 2
    samples_confidence: float = 0.9
    top_logprobs: int
    embedding_model: str
    cluster_similarity: float
    nli_model: str | None = None
    chat_template: str | None = None
    math_instruction: str | None = None
    answer_max_tokens: int
    system_prompt: str | None = None
    candor_version: str | None = None


class ThresholdEntry(Model):
    """A certified target risk (``alpha``) and the confidence threshold that keeps it."""

    alpha: float
    threshold: float | None = None
    answered: int
    errors: int
    p_value: float | None = None


class CalibrationMap(Model):
    """One stage's fitted map, summarised (``None`` in ``maps``: the stage has none)."""

    method: str
    n: int
    features: list[str] = Field(default_factory=list)


class CalibrationScope(Model):
    """A profile's scope test: a request whose p-value against the profile's calibration
    questions is below ``level`` is out of scope, and nothing is promised for it.

    ``components``: what the test compares (question similarity, question and answer
    length); ``k``: nearest neighbours in the similarity; ``bank`` / ``reference``: how
    many calibration questions it compares with / ranks p-values against; ``heldout``:
    how many held-out calibration questions it kept in scope.
    """

    level: float
    components: list[ScopeComponent] = Field(default_factory=list)
    k: int | None = None
    bank: int | None = None
    reference: int | None = None
    fitted: str | None = None
    heldout: dict[str, Any] | None = None


class CalibrationClaims(Model):
    """A profile's claim-level promise (claims mode): claims whose confidence is at or above
    ``threshold`` are kept, and with probability >= 1 - delta at most ``target_risk`` of
    answers served this way keep a wrong claim, as ``promise`` says in words (``none: ...``
    with no certified threshold or no scope test). ``threshold`` None: none certified.
    ``min_stage``: the stage a request must be allowed to reach for the promise."""

    promise: str = ""
    target_risk: float
    threshold: float | None = None
    splitter: str = "rules"
    features: list[str] = Field(default_factory=list)
    min_stage: int = 0
    test: dict[str, Any] = Field(default_factory=dict)
    feasibility: dict[str, Any] = Field(default_factory=dict)
    heldout: dict[str, Any] = Field(default_factory=dict)


class CalibrationProfile(Model):
    """One calibration profile served: its artifact and its promise.

    ``scope``: the profile's scope test (None: it has none, so it promises nothing);
    ``supported``: per max_stage, the certified target risks. Also readable by key
    (``profile["delta"]``, as the JSON has it), as when these summaries were plain dicts.
    """

    calibrated: bool = True
    id: str | None = None
    profile: str | None = None
    tasks: list[str] = Field(default_factory=list)
    model: str | None = None
    dataset: str | None = None
    n: int | None = None
    created: str | None = None
    labels: LabelSource | None = None
    guarantee: bool | None = None
    delta: float | None = None
    default_target_risk: float | None = None
    default_supported: bool | None = None
    abstain_threshold: float | None = None
    max_stage_calibrated: int | None = None
    promise: str | None = None
    settings: ServingSettings | None = None
    supported: dict[str, list[ThresholdEntry]] | None = None
    maps: list[CalibrationMap | None] | None = None
    feasibility: dict[str, Any] | None = None
    heldout: dict[str, Any] | None = None
    scope: CalibrationScope | None = None
    claims: CalibrationClaims | None = None

    def __getitem__(self, key: str) -> Any:
        """A field by key, as the JSON had it (nested models as dicts)."""
        data = self.model_dump(mode="json", exclude_unset=True)
        if key not in data:
            raise KeyError(key)
        return data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.model_dump(mode="json", exclude_unset=True).get(key, default)


class AbstentionReport(Model):
    """Audited decisions under one promise and how many abstained, with anytime-valid
    bounds, against the calibration's held-out rate (``expected``)."""

    decisions: int
    abstained: int
    rate: float | None = None
    lower: float
    upper: float
    expected: float | None = None


class PromiseReport(Model):
    """One promise (profile, artifact, target risk) on labelled audited answers."""

    target_risk: float
    verdict: Verdict
    labelled: int
    errors: int
    estimate: float | None = None
    lower: float
    upper: float
    level: float
    min_labels: int
    abstention: AbstentionReport


class DriftWindow(Model):
    """Recent decisions against the calibration set's reference (PSI; ``None`` until the
    window is half full)."""

    psi: float | None = None
    n: int
    drift: bool
    window_shares: list[float] = Field(default_factory=list)
    reference_shares: list[float] | None = None


class DriftBins(DriftWindow):
    edges: list[float] = Field(default_factory=list)


class DriftReport(Model):
    """Input drift of a profile's active artifact, without labels."""

    statistic: Literal["psi"] = "psi"
    threshold: float
    window: int
    drift: bool
    confidence: DriftBins
    signals: dict[str, DriftBins] = Field(default_factory=dict)
    stage_mix: DriftWindow
    reference_n: int


class PromiseStatus(Model):
    """One profile's artifact watched live: its promise's verdict on audited labels. The
    default target risk's counts and bounds are at the top level when it is watched;
    ``promises``: every target risk watched; ``drift``: the active artifact's inputs."""

    profile: str
    calibration_id: str
    active: bool
    target_risk: float | None = None
    verdict: Verdict
    labelled: int | None = None
    errors: int | None = None
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    level: float | None = None
    min_labels: int | None = None
    promises: list[PromiseReport] = Field(default_factory=list)
    drift: DriftReport | None = None


class MonitorFreshness(Model):
    """Where a replica's live monitors come from and how fresh they are: ``shared_log``
    (the decision log every replica shares, re-read every ``refresh_interval_s``; the
    monitors hold every label committed before ``refreshed_at``, ``age_s`` ago) or
    ``local`` (this replica's own decisions and labels, counted as they happen)."""

    source: MonitorSource
    refresh_interval_s: float | None = None
    refreshed_at: float | None = None
    age_s: float | None = None
    errors: int = 0
    last_error: str | None = None


class Calibration(Model):
    """``GET /v1/calibration``: the profiles served (``calibrated=False`` if none).

    ``calibrations``: each profile's artifact summary, promise and scope test;
    ``skipped``: shipped profiles not served and why; ``profiles``: the live verdict per
    profile and artifact; ``monitors``: where that comes from, how fresh; ``serving``: the
    server's serving settings. With exactly one profile the server also puts its summary
    at the top level (``profile``, ``delta``, ...; ``None`` otherwise); with several or
    none, ``message`` says what that means.
    """

    calibrated: bool
    id: str | None = None
    profile: str | None = None
    tasks: list[str] | None = None
    model: str | None = None
    dataset: str | None = None
    n: int | None = None
    created: str | None = None
    labels: LabelSource | None = None
    guarantee: bool | None = None
    delta: float | None = None
    default_target_risk: float | None = None
    default_supported: bool | None = None
    abstain_threshold: float | None = None
    max_stage_calibrated: int | None = None
    promise: str | None = None
    settings: ServingSettings | None = None
    supported: dict[str, list[ThresholdEntry]] | None = None
    maps: list[CalibrationMap | None] | None = None
    feasibility: dict[str, Any] | None = None
    heldout: dict[str, Any] | None = None
    scope: CalibrationScope | None = None
    claims: CalibrationClaims | None = None
    serving: ServingSettings | None = None
    calibrations: list[CalibrationProfile] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    profiles: list[PromiseStatus] = Field(default_factory=list)
    monitors: MonitorFreshness | None = None
    message: str | None = None
    answer_threshold: float | None = None


class ReloadResult(Model):
    """``POST /v1/admin/calibration/reload``: what the reload changed (profile -> artifact
    id before and after; profiles added, removed, replaced, re-read unchanged)."""

    reloaded: bool
    changed: bool
    source: str
    profiles: dict[str, str] = Field(default_factory=dict)
    previous: dict[str, str] = Field(default_factory=dict)
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    replaced: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
