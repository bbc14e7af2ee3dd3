"""Every Prometheus metric of the service, in one place, on an injected registry.

Names carry the ``candor_`` prefix; labels are bounded (endpoint, decision, reason,
stage, status, and profile: the names of the calibration artifacts loaded): values
outside the known sets are folded into ``other`` so a scanner probing random paths
cannot grow the series count. Bucket boundaries are defined once, here. Known label
combinations are pre-created at 0, so rates and ratios are defined from the first scrape
(a series that appears mid-window under-counts its first hit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service import schemas
from service.vocab import ABSTAIN_REASONS, DECISIONS, NO_PROMISE, STAGE_KEYS, STAGE_NAMES

if TYPE_CHECKING:
    from service.calibration.artifact import CalibratedModel
    from service.cascade.profiles import Profiles

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
CONFIDENCE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
TOKEN_BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

# Bounded label values. Endpoints that produce answers, then every route of the API.
ANSWER_ENDPOINTS = ("/v1/answer", "/v1/chat/completions")
ENDPOINTS = frozenset(
    (*ANSWER_ENDPOINTS, "/v1/score", "/v1/feedback", "/v1/models", "/v1/calibration",
     "/healthz", "/readyz", "/metrics", "/v1/admin/calibration/reload")
)
STAGES = STAGE_KEYS
# Statuses the API documents (service/api/answer.py), pre-created so 5xx ratios exist at 0,
# and 499 (nginx's "client closed request"): the caller went away and its work was cancelled.
ERROR_STATUSES = ("400", "401", "404", "408", "413", "422", "429", "499", "500", "503", "504")
OTHER = "other"
# The profile label of a request no scope test ran on (``candor_scope_total``).
NO_PROFILE = "none"


def _bounded(value: str, known: frozenset[str] | tuple[str, ...]) -> str:
    return value if value in known else OTHER


class Metrics:
    """The ``candor_*`` metrics; ``observe_*`` turn one response or error into updates."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "candor_requests", "Requests by endpoint and decision (answer|abstain|error).",
            ["endpoint", "decision"], registry=r,
        )
        self.abstentions = Counter(
            "candor_abstentions", "Abstentions by reason.", ["reason"], registry=r
        )
        self.stage_reached = Counter(
            "candor_stage_reached", "Requests by the last stage the cascade ran.", ["stage"],
            registry=r,
        )
        self.stage_latency = Histogram(
            "candor_stage_latency_seconds", "Time spent in each stage.", ["stage"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.request_latency = Histogram(
            "candor_request_latency_seconds", "End-to-end cascade time per request.",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.confidence = Histogram(
            "candor_confidence", "Final confidence per answered or abstained request.",
            buckets=CONFIDENCE_BUCKETS, registry=r,
        )
        self.tokens = Counter(
            "candor_tokens", "Generated tokens by stage.", ["stage"], registry=r
        )
        self.tokens_per_request = Histogram(
            "candor_tokens_per_request", "Generated tokens per request (all stages).",
            buckets=TOKEN_BUCKETS, registry=r,
        )
        self.homogeneous = Counter(
            "candor_homogeneous", "Requests whose samples all fell in one cluster.", registry=r
        )
        self.engine_errors = Counter(
            "candor_engine_errors", "Engine failures seen by requests (HTTP 503).", registry=r
        )
        self.errors = Counter(
            "candor_errors", "Error responses by status code.", ["status"], registry=r
        )
        self.inflight = Gauge(
            "candor_queue_depth", "Cascades in flight (admitted, not finished).", registry=r
        )
        self.calibration_info = Gauge(
            "candor_calibration_info", "Each calibration profile served and its artifact "
            "(value 1; profile \"\" and id \"uncalibrated\" when none).",
            ["profile", "id", "target_risk"], registry=r,
        )
        self.audited = Counter(
            "candor_audited", "Decisions drawn into the uniform audit sample.", registry=r
        )
        self.no_promise = Counter(
            "candor_no_promise", "Decisions that carried no calibrated promise, by why.",
            ["why"], registry=r,
        )
        self.feedback = Counter(
            "candor_feedback", "Labels received; audited=true labels are the unbiased sample.",
            ["audited"], registry=r,
        )
        self.admission_limit = Gauge(
            "candor_admission_limit", "Current admission limit per pool (answers, score, "
            "feedback).",
            ["pool"], registry=r,
        )
        self.engine_sequences = Gauge(
            "candor_engine_sequences", "Candor's own engine sequences: running, waiting in "
            "the admission queue (a greedy pass is 1, a sampling stage its n), and the limit "
            "on those running (CANDOR_ENGINE_SEQUENCES, or less once the engine saturates).",
            ["state"], registry=r,
        )
        self.queue_pending = Gauge(
            "candor_queue_pending", "Admitted requests waiting for their first engine call.",
            registry=r,
        )
        self.engine_token_rate = Gauge(
            "candor_engine_token_rate", "The engine's measured total decode rate (tokens per "
            "second, all sequences together) the admission queue predicts with (0: not "
            "measured yet).", registry=r,
        )
        self.queue_wait = Histogram(
            "candor_queue_wait_seconds", "How long an admitted request waited for its first "
            "engine call.", buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.decision_log_errors = Counter(
            "candor_decision_log_errors", "Decision log batches that failed to commit.",
            registry=r,
        )
        self.decision_log_dropped = Counter(
            "candor_decision_log_dropped", "Decision rows not stored (queue full or a failed "
            "commit).", registry=r,
        )
        self.scope = Counter(
            "candor_scope", "Answered or abstained requests by the scope test's verdict: "
            "in_scope true|false for the profile tested, untested (profile \"none\") when no "
            "scope test ran.", ["profile", "in_scope"], registry=r,
        )
        self.scope_expected_in_share = Gauge(
            "candor_scope_expected_in_share", "Share of requests drawn like a profile's "
            "calibration set that its scope test keeps, at least (1 - level).", ["profile"],
            registry=r,
        )
        # Profile names of every artifact loaded in this process (bounded by the artifacts,
        # never by requests); a response naming another is counted as "other".
        self._scope_profiles: set[str] = set()
        self._monitoring(r)
        self._precreate()

    def _monitoring(self, r: CollectorRegistry) -> None:
        """Live promise and drift gauges (service/monitoring), per active artifact."""
        key = ["profile", "calibration_id", "target_risk"]
        self.promise_target = Gauge(
            "candor_promise_target_risk", "The promised error rate among answered (alpha).", key,
            registry=r)
        self.promise_labelled = Gauge(
            "candor_promise_labelled", "Labelled answered audited decisions.", key, registry=r)
        self.promise_risk = Gauge(
            "candor_promise_risk", "Realised error rate among answered audited decisions.", key,
            registry=r)
        self.promise_risk_lower = Gauge(
            "candor_promise_risk_lower", "Anytime-valid lower bound on the risk.", key,
            registry=r)
        self.promise_risk_upper = Gauge(
            "candor_promise_risk_upper", "Anytime-valid upper bound on the risk.", key,
            registry=r)
        self.promise_verdict = Gauge(
            "candor_promise_verdict", "1 for the promise's verdict (unverified|holding|breached).",
            [*key, "verdict"], registry=r)
        self.promise_abstention = Gauge(
            "candor_promise_abstention_rate", "Realised abstention rate of audited decisions.",
            key, registry=r)
        self.promise_abstention_expected = Gauge(
            "candor_promise_abstention_expected", "Abstention rate the calibration's held-out "
            "split had at this target risk.", key, registry=r)
        self.drift_psi = Gauge(
            "candor_drift_psi", "PSI of the recent window vs the calibration set, by signal "
            "(confidence, stage_mix, or a raw stage-0 signal).",
            ["profile", "calibration_id", "signal"], registry=r)
        self.drift_window = Gauge(
            "candor_drift_window", "Decisions in the drift window.", ["profile", "calibration_id"],
            registry=r)
        self.monitor_refresh_errors = Counter(
            "candor_monitor_refresh_errors", "Failed reads of a shared decision log by the "
            "live monitors' refresh (retried every CANDOR_MONITOR_REFRESH_S).", registry=r)
        self.reloads = Counter(
            "candor_calibration_reloads", "Calibration reloads by outcome (ok|rejected).",
            ["outcome"], registry=r)
        for outcome in ("ok", "rejected"):
            self.reloads.labels(outcome=outcome)

    def clear_monitoring(self) -> None:
        """Drop every promise and drift series (a reload publishes the new artifact's)."""
        for g in (self.promise_target, self.promise_labelled, self.promise_risk,
                  self.promise_risk_lower, self.promise_risk_upper, self.promise_verdict,
                  self.promise_abstention,
                  self.promise_abstention_expected, self.drift_psi, self.drift_window):
            g.clear()

    def publish_promise(self, profile: str, cal_id: str, report: dict[str, object]) -> None:
        """One promise's report (``PromiseMonitor.report``) as gauges."""
        lab = {"profile": profile, "calibration_id": cal_id,
               "target_risk": f"{report['target_risk']:g}"}
        self.promise_target.labels(**lab).set(_num(report["target_risk"]))
        self.promise_labelled.labels(**lab).set(_num(report["labelled"]))
        if report["estimate"] is not None:
            self.promise_risk.labels(**lab).set(_num(report["estimate"]))
        self.promise_risk_lower.labels(**lab).set(_num(report["lower"]))
        self.promise_risk_upper.labels(**lab).set(_num(report["upper"]))
        for v in ("unverified", "holding", "breached"):
            self.promise_verdict.labels(**lab, verdict=v).set(int(report["verdict"] == v))
        ab = _entry(report["abstention"])
        if ab["rate"] is not None:
            self.promise_abstention.labels(**lab).set(_num(ab["rate"]))
        if ab["expected"] is not None:
            self.promise_abstention_expected.labels(**lab).set(_num(ab["expected"]))

    def publish_drift(self, profile: str, cal_id: str, report: dict[str, object]) -> None:
        lab = {"profile": profile, "calibration_id": cal_id}
        entries = {"confidence": _entry(report["confidence"]),
                   "stage_mix": _entry(report["stage_mix"]),
                   **{k: _entry(v) for k, v in _entry(report.get("signals", {})).items()}}
        for signal, entry in entries.items():
            value = entry["psi"]
            if value is not None:
                self.drift_psi.labels(**lab, signal=signal).set(_num(value))
        self.drift_window.labels(**lab).set(_num(entries["confidence"]["n"]))

    def _precreate(self) -> None:
        """Create every known label combination at 0 (see the module docstring)."""
        for endpoint in ANSWER_ENDPOINTS:
            for decision in (*DECISIONS, "error"):
                self.requests.labels(endpoint=endpoint, decision=decision)
        for reason in ABSTAIN_REASONS:
            self.abstentions.labels(reason=reason)
        for stage in STAGES:
            self.stage_reached.labels(stage=stage)
        for name in STAGE_NAMES:
            self.tokens.labels(stage=name)
        for status in ERROR_STATUSES:
            self.errors.labels(status=status)
        for audited in ("true", "false"):
            self.feedback.labels(audited=audited)
        for why in NO_PROMISE:
            self.no_promise.labels(why=why)
        self.scope.labels(profile=NO_PROFILE, in_scope="untested")

    def set_calibration(self, profiles: Profiles[CalibratedModel]) -> None:
        """Publish the profiles served now; the previous artifacts' rows are dropped."""
        self.calibration_info.clear()
        for name, m in profiles.models.items():
            risk = m.default_target_risk
            self.calibration_info.labels(profile=name, id=m.id or "",
                                         target_risk="" if risk is None else str(risk)).set(1)
        if not profiles.models:
            self.calibration_info.labels(profile="", id="uncalibrated", target_risk="").set(1)
        self.scope_expected_in_share.clear()
        for name, m in profiles.models.items():
            self._scope_profiles.add(name)
            if m.scope is None:
                continue
            self.scope_expected_in_share.labels(profile=name).set(1.0 - m.scope.level)
            for verdict in ("true", "false"):  # counters are kept: they only ever grow
                self.scope.labels(profile=name, in_scope=verdict)

    def observe_answer(self, endpoint: str, resp: schemas.AnswerResponse, seconds: float) -> None:
        """Count one finished cascade (answered or abstained) and what it cost."""
        endpoint = _bounded(endpoint, ENDPOINTS)
        self.requests.labels(endpoint=endpoint, decision=resp.decision).inc()
        if resp.abstained:
            reason = _bounded(resp.reason or "unknown", ABSTAIN_REASONS)
            self.abstentions.labels(reason=reason).inc()
        self.stage_reached.labels(stage=_bounded(str(resp.stage_reached), STAGES)).inc()
        for st in resp.stages:
            name = _bounded(st.name, STAGE_NAMES)
            self.stage_latency.labels(stage=name).observe(st.ms / 1000.0)
            self.tokens.labels(stage=name).inc(st.tokens)
        self.request_latency.labels(endpoint=endpoint).observe(seconds)
        self.confidence.observe(resp.confidence)
        self.tokens_per_request.observe(resp.usage.completion_tokens)
        if resp.signals.homogeneous:
            self.homogeneous.inc()
        if resp.audit:
            self.audited.inc()
        if resp.calibration.target_risk is None:
            why = (resp.calibration.reason or "uncalibrated").split(":", 1)[0]
            self.no_promise.labels(why=_bounded(why, NO_PROMISE)).inc()
        self.scope.labels(**self._scope_labels(resp.scope)).inc()

    def _scope_labels(self, scope: schemas.ScopeReport) -> dict[str, str]:
        if scope.outcome == "untested":
            return {"profile": NO_PROFILE, "in_scope": "untested"}
        profile = scope.profile if scope.profile in self._scope_profiles else OTHER
        return {"profile": profile, "in_scope": "true" if scope.outcome == "in" else "false"}

    def observe_feedback(self, audited: bool) -> None:
        self.feedback.labels(audited="true" if audited else "false").inc()

    def observe_score(self, seconds: float) -> None:
        """Count one /v1/score call (no decision, so not in ``candor_requests``)."""
        self.request_latency.labels(endpoint="/v1/score").observe(seconds)

    def observe_error(self, endpoint: str, status: int) -> None:
        """Count one error response; 503 means the engine was unavailable."""
        endpoint = _bounded(endpoint, ENDPOINTS)
        self.requests.labels(endpoint=endpoint, decision="error").inc()
        self.errors.labels(status=_bounded(str(status), ERROR_STATUSES)).inc()
        if status == 503:
            self.engine_errors.inc()


def _num(value: object) -> float:
    """A number of a monitor's report (a gauge's value)."""
    if not isinstance(value, int | float):
        raise TypeError(f"expected a number in the monitor report, got {value!r}")
    return float(value)


def _entry(value: object) -> dict[str, object]:
    """A nested mapping of a monitor's report."""
    if not isinstance(value, dict):
        raise TypeError(f"expected a mapping in the monitor report, got {value!r}")
    return value
