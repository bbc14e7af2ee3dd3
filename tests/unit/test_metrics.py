"""The ``candor_*`` metrics: what each response and error adds, bounded labels, ``/metrics``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service import schemas
from service.calibration.artifact import ArtifactSpec, CalibratedModel, save_artifact
from service.cascade.profiles import Profiles
from service.config import Settings
from service.main import create_app
from service.metrics import ERROR_STATUSES, Metrics
from service.vocab import ABSTAIN_REASONS
from tests.fakes import FakeEmbedder, FakeEngine, Script
from tests.unit.test_calibration import make_spec

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

    from service.cascade.profiles import Profiles

    def model(name: str, risk: float | None) -> SimpleNamespace:
        return SimpleNamespace(id=f"{name}-1", default_target_risk=risk, scope=None,
                               tasks=(name,), profile=name,
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


# -- the scope test (candor_scope_total, candor_scope_expected_in_share) ----------------------
SCOPE_LEVEL = 0.1
LONG = "k03 " + "river stone " * 300  # ~3,600 characters: the synthetic questions have <= 400


@pytest.fixture(scope="module")
def scoped_spec() -> ArtifactSpec:
    """A synthetic artifact with a length-only scope test at level 0.1."""
    spec = make_spec(600, seed=1, scope_level=SCOPE_LEVEL)
    assert spec.scope is not None and spec.scope.level == SCOPE_LEVEL
    return spec.model_copy(update={"profile": "synth", "id": "synth-1"})


@pytest.fixture(scope="module")
def scoped_artifact(scoped_spec: ArtifactSpec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scope") / "synth.json"
    save_artifact(scoped_spec, path)
    return path


def scope_rows(m: Metrics) -> dict[frozenset[tuple[str, str]], float]:
    return {k[1]: v for k, v in parse(generate_latest(m.registry).decode()).items()
            if k[0] == "candor_scope_expected_in_share"}


def test_expected_in_share_is_one_minus_level_per_scoped_profile(
        scoped_spec: ArtifactSpec) -> None:
    unscoped = scoped_spec.model_copy(update={"profile": "plain", "id": "plain-1", "scope": None,
                                              "tasks": ["open"]})
    scoped = scoped_spec.model_copy(update={"tasks": ["math"]})
    m = Metrics()
    m.set_calibration(Profiles({"synth": CalibratedModel(scoped),
                                "plain": CalibratedModel(unscoped)}))
    # only the profile with a scope test has a row; its value is 1 - level
    assert scope_rows(m) == {frozenset({"profile": "synth"}.items()): pytest.approx(0.9)}
    s = parse(generate_latest(m.registry).decode())
    for verdict in ("true", "false"):  # pre-created at 0: the share is defined from the start
        assert value(s, "candor_scope_total", profile="synth", in_scope=verdict) == 0
    assert ("candor_scope_total", frozenset({"profile": "plain", "in_scope": "true"}.items())) \
        not in s
    # a reload drops the old artifacts' expected shares
    m.set_calibration(Profiles({"plain": CalibratedModel(unscoped)}))
    assert scope_rows(m) == {}
    m.set_calibration(Profiles())
    assert scope_rows(m) == {}


def _scope_key(body: dict[str, object]) -> tuple[str, str]:
    scope = body["scope"]
    assert isinstance(scope, dict)
    if not scope["tested"]:
        return "none", "untested"
    return str(scope["profile"]), "true" if scope["in_scope"] else "false"


def test_scope_counter_counts_each_response_by_its_scope_report(scoped_artifact: Path) -> None:
    from tests.unit.test_calibration_api import SCRIPTS

    app = create_app(Settings(samples_n=4, calibration=scoped_artifact),
                     engine=FakeEngine(scripts=SCRIPTS), embedder=FakeEmbedder())
    with TestClient(app, raise_server_exceptions=False) as c:
        s0 = parse(c.get("/metrics").text)
        assert value(s0, "candor_scope_expected_in_share", profile="synth") == pytest.approx(
            1 - SCOPE_LEVEL)
        bodies = []
        for q in ("k01", "k02: what is the capital of France?", LONG, LONG + " again"):
            r = c.post("/v1/answer", json={"question": q})
            assert r.status_code == 200, r.text
            bodies.append(r.json())
        assert c.post("/v1/answer", json={"question": " "}).status_code == 422  # not counted
        s = parse(c.get("/metrics").text)

    keys = [_scope_key(b) for b in bodies]
    assert keys[:2] == [("synth", "true")] * 2  # short questions, like the calibration set's
    assert keys[2:] == [("synth", "false")] * 2  # far longer than any calibration question
    for b in bodies[2:]:  # out of scope: no promise, abstains by default
        assert b["calibration"]["target_risk"] is None
        assert b["calibration"]["reason"].startswith("out_of_scope:")
        assert (b["decision"], b["reason"]) == ("abstain", "out_of_scope")
    for verdict in ("true", "false"):
        assert value(s, "candor_scope_total", profile="synth", in_scope=verdict) == \
            keys.count(("synth", verdict)) == 2
    assert value(s, "candor_scope_total", profile="none", in_scope="untested") == 0
    assert sum(v for (n, _), v in s.items() if n == "candor_scope_total") == len(bodies)
    assert value(s, "candor_no_promise_total", why="out_of_scope") == 2
    assert value(s, "candor_abstentions_total", reason="out_of_scope") == 2


def test_untested_requests_count_under_profile_none(client: TestClient) -> None:
    body = client.post("/v1/answer", json={"question": "sure: capital of France?"}).json()
    assert body["scope"]["tested"] is False  # uncalibrated: no scope test ran
    s = parse(client.get("/metrics").text)
    assert value(s, "candor_scope_total", profile="none", in_scope="untested") == 1
    assert {dict(k[1])["in_scope"] for k in s if k[0] == "candor_scope_total"} == {"untested"}


def test_scope_profile_label_is_bounded_by_the_loaded_artifacts(
        scoped_spec: ArtifactSpec, client: TestClient) -> None:
    raw = client.post("/v1/answer", json={"question": "sure: capital of France?"}).json()
    resp = schemas.AnswerResponse.model_validate(raw)
    m = Metrics()
    m.set_calibration(Profiles({"synth": CalibratedModel(scoped_spec)}))
    for i in range(20):  # a profile name no loaded artifact has is folded into "other"
        scope = schemas.ScopeReport(tested=True, profile=f"made-up-{i}", p_value=0.01,
                                    level=0.1, in_scope=False)
        m.observe_answer("/v1/answer", resp.model_copy(update={"scope": scope}), 0.1)
    kept = schemas.ScopeReport(tested=True, profile="synth", p_value=0.5, level=0.1,
                               in_scope=True)
    m.observe_answer("/v1/answer", resp.model_copy(update={"scope": kept}), 0.1)
    s = parse(generate_latest(m.registry).decode())
    assert value(s, "candor_scope_total", profile="other", in_scope="false") == 20
    assert value(s, "candor_scope_total", profile="synth", in_scope="true") == 1
    assert {dict(k[1])["profile"] for k in s if k[0] == "candor_scope_total"} == {
        "synth", "other", "none"}
