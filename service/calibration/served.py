"""What ``GET /v1/calibration`` says: every profile served, its promise, and the live watch.

``CalibratedModel.describe()`` is a ``CalibrationProfile``; ``Monitoring.report()`` a list of
``PromiseStatus``; the router (``service/api/calibration.py``) puts them together into a
``CalibrationResponse``. A field typed ``| MISSING`` is left out of the JSON when it is not
set (not sent as null). The models sit here, beside the artifact whose shapes they carry
(``ServingSettings``, ``ThresholdEntry``), so each shape has one definition.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import MISSING, BaseModel, Field

from service.calibration.artifact import Labels, ThresholdEntry
from service.calibration.pinning import ServingSettings
from service.calibration.scope import Component
from service.vocab import MonitorSource, Verdict


class CalibrationMap(BaseModel):
    """One stage's fitted map, summarised (``null`` in ``maps``: the stage has none and
    inherits the confidence of the stage below)."""

    method: str = Field(description="platt or isotonic.")
    n: int = Field(description="Records the map was fitted on.")
    features: list[str] = Field(description="The map's inputs.")


class CalibrationScope(BaseModel):
    """A profile's scope test: a request whose p-value against the profile's calibration
    questions is below ``level`` is out of scope, and nothing is promised for it."""

    level: float = Field(description="p-value below which a request is out of scope.")
    components: list[Component] = Field(description="What the test compares.")
    k: int = Field(description="Nearest neighbours in the similarity component.")
    bank: int = Field(description="Calibration questions the test compares with.")
    reference: int = Field(description="Calibration questions p-values are ranked against.")
    fitted: str = Field(description="What the test was fitted on.")
    heldout: dict[str, Any] | None = Field(
        description="How many test and held-out calibration questions it kept in scope.")


class CalibrationClaims(BaseModel):
    """A profile's claim-level promise (claims mode): claims whose confidence is at or above
    ``threshold`` are kept, and with probability >= 1 - delta at most ``target_risk`` of
    answers served this way keep a wrong claim (docs/claims.md)."""

    promise: str = Field(description="The claim-level promise in words, or why there is "
                         "none (no certified threshold, no scope test).")
    target_risk: float = Field(description="The claim target risk alpha, fixed before "
                               "fitting (promised only as `promise` says).")
    threshold: float | None = Field(description="null: none certified, every claim kept.")
    splitter: str
    features: list[str] = Field(description="The claim map's inputs.")
    min_stage: int = Field(description="The stage a request must be allowed to reach for "
                           "the promise (the map reads the samples' support).")
    test: dict[str, Any] = Field(description="Test-split answers, violations, p-value.")
    feasibility: dict[str, Any]
    heldout: dict[str, Any] = Field(description="Held-out figures against keeping every "
                                    "claim and the whole-answer decision.")


class CalibrationProfile(BaseModel):
    """One calibration profile served: its artifact and its promise."""

    calibrated: bool
    id: str = Field(description="Artifact id.")
    profile: str
    tasks: list[str] = Field(description="Tasks this profile covers.")
    model: str
    dataset: str
    n: int = Field(description="Labelled records the artifact was built from.")
    created: str
    labels: Labels = Field(description="Where the labels came from; only dataset and "
                                "audit labels carry a guarantee.")
    guarantee: bool = Field(description="false: calibrated maps only, nothing is promised.")
    delta: float | None = Field(description="The promise fails with probability <= delta.")
    default_target_risk: float | None = Field(
        description="What a request that sets no policy.target_risk is promised.")
    default_supported: bool = Field(description="false: requests without target_risk "
                                    "abstain (the default is not certified).")
    abstain_threshold: float
    max_stage_calibrated: int = Field(description="Highest stage in the calibration data.")
    promise: str = Field(description="The promise, in words.")
    settings: ServingSettings = Field(description="The serving settings the artifact pins.")
    supported: dict[str, list[ThresholdEntry]] = Field(
        description="Per max_stage: each certified target risk (alpha) and its threshold.")
    maps: list[CalibrationMap | None]
    feasibility: dict[str, Any] = Field(description="The base error rate and the least "
                                        "abstention each target risk needs.")
    heldout: dict[str, Any] = Field(description="Metrics on the held-out split.")
    scope: CalibrationScope | None = Field(
        description="The scope test; null: none, so the profile promises nothing.")
    claims: CalibrationClaims | None = Field(
        description="The claim-level promise; null: claims mode is served uncalibrated.")


class AbstentionReport(BaseModel):
    """Audited decisions under one promise: how many abstained, with the same anytime-valid
    bounds, against the calibration's held-out rate (``expected``)."""

    decisions: int
    abstained: int
    rate: float | None
    lower: float
    upper: float
    expected: float | None


class PromiseReport(BaseModel):
    """One promise (profile, artifact, target risk) watched on labelled audited answers."""

    target_risk: float
    verdict: Verdict
    labelled: int = Field(description="Labelled answered audited decisions.")
    errors: int
    estimate: float | None = Field(description="The realised risk, errors / labelled.")
    lower: float = Field(description="Anytime-valid lower bound of the risk.")
    upper: float = Field(description="Anytime-valid upper bound of the risk.")
    level: float = Field(description="The bounds fail, ever, with probability <= level.")
    min_labels: int = Field(description="Labels before a promise can be holding.")
    abstention: AbstentionReport


class DriftWindow(BaseModel):
    """A window of recent decisions against the calibration set's reference (PSI)."""

    psi: float | None = Field(description="null until the window is half full.")
    n: int
    drift: bool
    window_shares: list[float]
    reference_shares: list[float] | None


class DriftBins(DriftWindow):
    edges: list[float] = Field(description="Inner bin edges (reference quantiles).")


class DriftReport(BaseModel):
    """Input drift of a profile's active artifact, without labels."""

    statistic: Literal["psi"]
    threshold: float
    window: int
    drift: bool = Field(description="The confidence or a raw signal is past the threshold.")
    confidence: DriftBins = Field(description="Stage-0 confidence.")
    signals: dict[str, DriftBins] = Field(description="Each raw stage-0 signal.")
    stage_mix: DriftWindow = Field(description="Where the default policy stopped.")
    reference_n: int


class PromiseStatus(BaseModel):
    """One profile's artifact watched live. The default target risk's counts and bounds
    are also at the top level, when that promise is watched."""

    profile: str
    calibration_id: str
    active: bool = Field(description="The artifact the profile serves now.")
    target_risk: float | None = Field(description="The default target risk (active only).")
    verdict: Verdict = Field(description="breached when any promise is, else the default's.")
    labelled: int | MISSING = MISSING
    errors: int | MISSING = MISSING
    estimate: float | None | MISSING = MISSING
    lower: float | MISSING = MISSING
    upper: float | MISSING = MISSING
    level: float | MISSING = MISSING
    min_labels: int | MISSING = MISSING
    promises: list[PromiseReport] = Field(description="Every target risk watched.")
    drift: DriftReport | None = Field(description="null: inactive, or no drift reference.")


class MonitorFreshness(BaseModel):
    """How fresh this replica's view of the live monitors (``profiles``) is."""

    source: MonitorSource = Field(
        description="shared_log: taken from the decision log every replica shares, "
        "refreshed every refresh_interval_s (replicas agree within one interval); local: "
        "this replica's own decisions and labels, counted as they happen.")
    refresh_interval_s: float | None = Field(description="shared_log: CANDOR_MONITOR_REFRESH_S.")
    refreshed_at: float | None = Field(
        description="shared_log: unix time of the last successful read; the monitors hold "
        "every label committed before it. null: not read yet.")
    age_s: float | None = Field(description="Seconds since refreshed_at.")
    errors: int = Field(description="Failed reads of the shared log since startup.")
    last_error: str | None = Field(description="The last read's error, while it fails.")


class CalibrationResponse(BaseModel):
    """``GET /v1/calibration``. With exactly one profile, its ``CalibrationProfile`` fields
    are also at the top level; several: ``message`` says how requests are routed; none:
    ``calibrated`` false, ``message`` says why, and the uncalibrated thresholds."""

    calibrated: bool
    id: str | None = Field(description="The artifact id with one profile, else null.")
    profile: str | MISSING = MISSING
    tasks: list[str] | MISSING = MISSING
    model: str | MISSING = MISSING
    dataset: str | MISSING = MISSING
    n: int | MISSING = MISSING
    created: str | MISSING = MISSING
    labels: Labels | MISSING = MISSING
    guarantee: bool | MISSING = MISSING
    delta: float | None | MISSING = MISSING
    default_target_risk: float | None | MISSING = MISSING
    default_supported: bool | MISSING = MISSING
    abstain_threshold: float | MISSING = Field(
        default=MISSING, description="The profile's (one profile) or the server's "
        "(uncalibrated) abstain threshold.")
    max_stage_calibrated: int | MISSING = MISSING
    promise: str | MISSING = MISSING
    settings: ServingSettings | MISSING = MISSING
    supported: dict[str, list[ThresholdEntry]] | MISSING = MISSING
    maps: list[CalibrationMap | None] | MISSING = MISSING
    feasibility: dict[str, Any] | MISSING = MISSING
    heldout: dict[str, Any] | MISSING = MISSING
    scope: CalibrationScope | None | MISSING = MISSING
    claims: CalibrationClaims | None | MISSING = MISSING
    serving: ServingSettings = Field(description="The server's serving settings now.")
    calibrations: list[CalibrationProfile] = Field(description="Every profile served.")
    skipped: list[str] = Field(description="Shipped profiles not served, and why.")
    profiles: list[PromiseStatus] = Field(
        description="The live watch per profile and artifact (replaced artifacts included).")
    monitors: MonitorFreshness = Field(description="Where profiles comes from, how fresh.")
    message: str | MISSING = Field(default=MISSING,
                                   description="Several profiles, or none: what that means.")
    answer_threshold: float | MISSING = Field(
        default=MISSING, description="Uncalibrated only: the server's answer threshold.")
