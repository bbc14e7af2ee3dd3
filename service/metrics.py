"""Every Prometheus metric of the service, in one place, on an injected registry.

Names carry the ``candor_`` prefix; labels are bounded (endpoint, decision, reason,
stage). Bucket boundaries are defined once, here.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service import schemas

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
CONFIDENCE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
TOKEN_BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class Metrics:
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
            "candor_engine_errors", "Engine failures seen by requests.", registry=r
        )
        self.errors = Counter(
            "candor_errors", "Error responses by status code.", ["status"], registry=r
        )
        self.inflight = Gauge(
            "candor_queue_depth", "Cascades in flight (admitted, not finished).", registry=r
        )
        self.calibration_info = Gauge(
            "candor_calibration_info", "The active calibration artifact (value 1).",
            ["id", "target_risk"], registry=r,
        )

    def set_calibration(self, cal_id: str | None, target_risk: float | None) -> None:
        self.calibration_info.labels(
            id=cal_id or "uncalibrated", target_risk="" if target_risk is None else str(target_risk)
        ).set(1)

    def observe_answer(self, endpoint: str, resp: schemas.AnswerResponse, seconds: float) -> None:
        self.requests.labels(endpoint=endpoint, decision=resp.decision).inc()
        if resp.abstained:
            self.abstentions.labels(reason=resp.reason or "unknown").inc()
        self.stage_reached.labels(stage=str(resp.stage_reached)).inc()
        for st in resp.stages:
            self.stage_latency.labels(stage=st.name).observe(st.ms / 1000.0)
            self.tokens.labels(stage=st.name).inc(st.tokens)
        self.request_latency.labels(endpoint=endpoint).observe(seconds)
        self.confidence.observe(resp.confidence)
        self.tokens_per_request.observe(resp.usage.completion_tokens)
        if resp.signals.homogeneous:
            self.homogeneous.inc()

    def observe_error(self, endpoint: str, status: int) -> None:
        self.requests.labels(endpoint=endpoint, decision="error").inc()
        self.errors.labels(status=str(status)).inc()
        if status == 503:
            self.engine_errors.inc()
