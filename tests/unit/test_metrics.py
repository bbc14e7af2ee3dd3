"""The ``candor_*`` metrics: what each response and error adds, bounded labels, ``/metrics``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.config import Settings
from service.main import create_app
from service.metrics import ABSTAIN_REASONS, ERROR_STATUSES, Metrics
from tests.fakes import FakeEmbedder, FakeEngine, Script

Key = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> dict[Key, float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def value(samples: dict[Key, float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def client() -> Iterator[TestClient]:
    engine = FakeEngine(scripts={
        "sure": Script(greedy="Paris", logprob=-0.01),
        "same": Script(greedy="42", logprob=-1.5, samples=["42"] * 4),
    })
    app = create_app(Settings(samples_n=4), engine=engine, embedder=FakeEmbedder())
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_known_series_exist_at_zero_before_any_traffic() -> None:
    m = Metrics(CollectorRegistry())
    s = parse(generate_latest(m.registry).decode())
    for reason in ABSTAIN_REASONS:
        assert value(s, "candor_abstentions_total", reason=reason) == 0
    for status in ERROR_STATUSES:
        assert value(s, "candor_errors_total", status=status) == 0
    for decision in ("answer", "abstain", "error"):
        assert value(s, "candor_requests_total", endpoint="/v1/answer", decision=decision) == 0
    assert value(s, "candor_stage_reached_total", stage="3") == 0
    assert value(s, "candor_engine_errors_total") == 0


def test_responses_and_errors_move_the_right_counters(client: TestClient) -> None:
    answered = client.post("/v1/answer", json={"question": "sure: capital of France?"}).json()
    abstained = client.post("/v1/answer", json={
        "question": "same: 6*7?", "policy": {"max_stage": 1, "answer_threshold": 1.0},
    }).json()
    hopeless = client.post("/v1/answer", json={
        "question": "sure: again", "policy": {"answer_threshold": 1.0, "abstain_threshold": 1.0},
    }).json()
    assert client.post("/v1/answer", json={"question": " "}).status_code == 422
    assert (answered["decision"], abstained["reason"], hopeless["reason"]) == (
        "answer", "low_confidence", "hopeless")

    s = parse(client.get("/metrics").text)
    assert value(s, "candor_requests_total", endpoint="/v1/answer", decision="answer") == 1
    assert value(s, "candor_requests_total", endpoint="/v1/answer", decision="abstain") == 2
    assert value(s, "candor_requests_total", endpoint="/v1/answer", decision="error") == 1
    assert value(s, "candor_abstentions_total", reason="low_confidence") == 1
    assert value(s, "candor_abstentions_total", reason="hopeless") == 1
    assert value(s, "candor_errors_total", status="422") == 1
    assert value(s, "candor_stage_reached_total", stage="0") == 2
    assert value(s, "candor_stage_reached_total", stage="1") == 1
    assert value(s, "candor_homogeneous_total") == 1
    assert value(s, "candor_confidence_count") == 3
    assert value(s, "candor_confidence_sum") == pytest.approx(
        answered["confidence"] + abstained["confidence"] + hopeless["confidence"])
    stage_tokens = sum(st["tokens"] for r in (answered, abstained, hopeless)
                       for st in r["stages"] if st["name"] == "consistency")
    assert value(s, "candor_tokens_total", stage="consistency") == stage_tokens > 0
    assert value(s, "candor_stage_latency_seconds_count", stage="consistency") == 1
    assert value(s, "candor_queue_depth") == 0


def test_labels_stay_bounded() -> None:
    m = Metrics()
    for i in range(50):
        m.observe_error(f"/scan/{i}", 404)
    m.observe_error("/v1/answer", 418)
    m.observe_error("/v1/answer", 503)
    m.observe_error("/v1/answer", 499)  # client went away: its own series, not "other"
    s = parse(generate_latest(m.registry).decode())
    assert value(s, "candor_requests_total", endpoint="other", decision="error") == 50
    assert value(s, "candor_errors_total", status="404") == 50
    assert value(s, "candor_errors_total", status="other") == 1
    assert value(s, "candor_errors_total", status="499") == 1
    assert value(s, "candor_engine_errors_total") == 1
    endpoints = {dict(k[1]).get("endpoint") for k in s if k[0] == "candor_requests_total"}
    assert endpoints == {"/v1/answer", "/v1/chat/completions", "other"}


def test_calibration_info_has_one_row_per_profile_served() -> None:
    from types import SimpleNamespace

    from service.calibration.profiles import Profiles

    def model(name: str, risk: float | None) -> SimpleNamespace:
        return SimpleNamespace(id=f"{name}-1", default_target_risk=risk,
                               spec=SimpleNamespace(tasks=[name], profile=name))

    def rows(m: Metrics) -> set[frozenset[tuple[str, str]]]:
        return {k[1] for k in parse(generate_latest(m.registry).decode())
                if k[0] == "candor_calibration_info"}

    m = Metrics()
    m.set_calibration(Profiles())
    assert rows(m) == {frozenset({"profile": "", "id": "uncalibrated",
                                  "target_risk": ""}.items())}
    m.set_calibration(Profiles({"math": model("math", 0.3),  # type: ignore[dict-item]
                                "factual": model("factual", None)}))
    assert rows(m) == {frozenset({"profile": "math", "id": "math-1", "target_risk": "0.3"}.items()),
                       frozenset({"profile": "factual", "id": "factual-1",
                                  "target_risk": ""}.items())}


def test_metrics_route_serves_candor_and_process_wide_metrics(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    names = {fam.name for fam in text_string_to_metric_families(r.text)}
    assert {"candor_requests", "candor_stage_latency_seconds", "candor_queue_depth"} <= names
    # prometheus_client's default registry (where vLLM registers its engine metrics)
    assert any(n.startswith(("python_", "process_")) for n in names)
