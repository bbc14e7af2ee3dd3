"""The HTTP contract on a fake engine: shapes, the cascade's paths, errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine, Script


def make_client(engine: FakeEngine, **settings: object) -> TestClient:
    s = Settings(**{"samples_n": 4, **settings})  # type: ignore[arg-type]
    # raise_server_exceptions=False: see what a real client sees, never the exception itself
    return TestClient(create_app(s, engine=engine, embedder=FakeEmbedder()),
                      raise_server_exceptions=False)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(
        scripts={
            "sure": Script(greedy="Paris", logprob=-0.01),
            "doubt": Script(greedy="maybe 7", logprob=-1.5,
                             samples=["7", "8", "7", "9"]),
            "same": Script(greedy="42", logprob=-1.5, samples=["42", "42", "42", "42"]),
            "empty": Script(greedy=""),
        }
    )


@pytest.fixture
def client(engine: FakeEngine) -> Iterator[TestClient]:
    with make_client(engine) as c:
        yield c


def test_probes_and_models(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert client.get("/v1/models").json()["data"][0]["id"] == "SmolLM2-135M-Instruct"


def test_confident_answer_stops_at_stage_0(client: TestClient, engine: FakeEngine) -> None:
    r = client.post("/v1/answer", json={"question": "sure: capital of France?"})
    assert r.status_code == 200
    body = r.json()
    assert body["answer"] == "Paris" and body["decision"] == "answer" and not body["abstained"]
    assert body["stage_reached"] == 0 and [s["name"] for s in body["stages"]] == ["token"]
    assert body["calibrated"] is False and body["calibration"]["calibrated"] is False
    assert body["confidence"] == pytest.approx(0.99, abs=0.001)
    assert body["signals"]["mean_nll"] == pytest.approx(0.01)
    assert len(engine.calls) == 1  # no sampling was paid for


def test_unsure_answer_escalates_through_all_stages(client: TestClient) -> None:
    r = client.post("/v1/answer", json={"question": "doubt: 3+4?", "return_samples": True})
    body = r.json()
    assert [s["name"] for s in body["stages"]] == ["token", "consistency", "semantic", "judge"]
    assert body["signals"]["consistency"] == pytest.approx(0.5)
    assert body["signals"]["n_clusters"] == 3 and body["signals"]["homogeneous"] is False
    assert body["decision"] == "abstain" and body["reason"] == "low_confidence"
    assert body["answer"] == "maybe 7"  # the best answer stays available
    assert [s["normalized"] for s in body["samples"]] == ["7", "8", "7", "9"]
    assert body["usage"]["completion_tokens"] > body["stages"][0]["tokens"]


def test_homogeneous_falls_back_on_stage_0(client: TestClient) -> None:
    body = client.post("/v1/answer", json={"question": "same: 6*7?",
                                           "policy": {"max_stage": 1}}).json()
    assert body["signals"]["homogeneous"] is True
    assert body["fallback"] == "token"
    token, cons = body["stages"]
    assert cons["informative"] is False
    assert cons["confidence"] == token["confidence"]  # all-agreeing samples added nothing
    assert body["confidence"] == pytest.approx(token["confidence"])


def test_max_stage_caps_the_cascade(client: TestClient) -> None:
    body = client.post("/v1/answer", json={"question": "doubt: 3+4?",
                                           "policy": {"max_stage": 0}}).json()
    assert body["stage_reached"] == 0 and body["decision"] == "abstain"


def test_empty_answer_abstains(client: TestClient) -> None:
    body = client.post("/v1/answer", json={"question": "empty?"}).json()
    assert body["abstained"] and body["reason"] == "empty_answer"


@pytest.mark.parametrize(
    ("payload", "param"),
    [({}, "question"), ({"question": ""}, "question"), ({"question": "   "}, "question"),
     ({"question": "q", "max_tokens": 0}, "max_tokens"),
     ({"question": "q", "policy": {"max_stage": 9}}, "policy.max_stage"),
     ({"question": "q", "policy": {"target_risk": 1.5}}, "policy.target_risk"),
     ({"question": "q", "nonsense": 1}, "nonsense"),
     ({"question": "q", "task": "poetry"}, "task")],
)
def test_bad_input_names_the_field(client: TestClient, payload: dict, param: str) -> None:
    r = client.post("/v1/answer", json=payload)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["code"] == 422


def test_max_tokens_over_limit_is_400(client: TestClient) -> None:
    r = client.post("/v1/answer", json={"question": "q", "max_tokens": 99999})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"


def test_not_json_is_422_not_500(client: TestClient) -> None:
    r = client.post("/v1/answer", content=b"{not json",
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and "error" in r.json()


def test_unknown_route_has_the_error_shape(client: TestClient) -> None:
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_engine_down_gives_503(engine: FakeEngine) -> None:
    with make_client(engine) as c:
        engine.healthy = False
        assert c.get("/readyz").status_code == 503
        r = c.post("/v1/answer", json={"question": "sure?"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "engine_unavailable"


def test_unexpected_error_is_500_without_trace(engine: FakeEngine) -> None:
    async def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals /etc/passwd")

    engine.generate = boom  # type: ignore[method-assign]
    with make_client(engine) as c:
        r = c.post("/v1/answer", json={"question": "q"})
    assert r.status_code == 500
    assert "secret" not in r.text and "Traceback" not in r.text


def test_deadline_before_first_answer_is_504() -> None:
    with make_client(FakeEngine(delay_s=0.3)) as c:
        r = c.post("/v1/answer", json={"question": "q", "policy": {"budget_ms": 50}})
    assert r.status_code == 504 and r.json()["error"]["param"] == "policy.budget_ms"


def test_deadline_mid_cascade_returns_what_it_has() -> None:
    eng = FakeEngine(default=Script(greedy="maybe", logprob=-1.5, samples=["a", "b"]),
                     delay_s=0.15)
    with make_client(eng) as c:
        body = c.post("/v1/answer", json={"question": "q", "policy": {"budget_ms": 250}}).json()
    assert body["stage_reached"] == 0 and body["reason"] == "deadline"
    assert any("deadline" in s for s in body["skipped"])


def test_score_without_generation(client: TestClient, engine: FakeEngine) -> None:
    r = client.post("/v1/score", json={"question": "What is 3+4?", "answer": "7",
                                       "samples": ["7", "7", "8"],
                                       "token_logprobs": [-0.2, -0.4]})
    body = r.json()
    assert r.status_code == 200 and engine.calls == []
    assert body["signals"]["consistency"] == pytest.approx(2 / 3)
    assert body["signals"]["mean_nll"] == pytest.approx(0.3)
    assert any(s.startswith("judge") for s in body["skipped"])


def test_score_skips_what_is_missing(client: TestClient) -> None:
    body = client.post("/v1/score", json={"question": "q", "answer": "a"}).json()
    assert body["confidence"] is None
    assert {s.split(":")[0] for s in body["skipped"]} == {"token", "consistency", "semantic",
                                                          "judge"}


def test_score_rejects_nan(client: TestClient) -> None:
    r = client.post("/v1/score", content=b'{"question":"q","answer":"a","token_logprobs":[NaN]}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422  # a finite number, element by element (api_types.Number)
    assert r.json()["error"]["param"] == "token_logprobs.0"


def test_run_all_disables_early_exit(client: TestClient) -> None:
    body = client.post("/v1/answer", json={"question": "sure: capital?",
                                           "policy": {"run_all": True}}).json()
    assert [s["name"] for s in body["stages"]] == ["token", "consistency", "semantic", "judge"]
    assert body["decision"] == "answer"  # still decided on the final confidence


def test_request_thresholds_override_and_void_the_promise(client: TestClient) -> None:
    body = client.post("/v1/answer", json={"question": "doubt: 3+4?",
                                           "policy": {"answer_threshold": 0.1}}).json()
    assert body["decision"] == "answer" and body["stage_reached"] == 0
    assert body["calibration"]["threshold"] == 0.1 and body["calibration"]["target_risk"] is None
    r = client.post("/v1/answer", json={"question": "q", "policy": {
        "answer_threshold": 0.1, "abstain_threshold": 0.5}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "policy"


def test_return_logprobs(client: TestClient) -> None:
    body = client.post("/v1/answer", json={"question": "sure: x", "return_logprobs": True}).json()
    assert body["logprobs"] == [{"token": "Paris", "logprob": -0.01,
                                 "top_logprobs": [-0.1, -2.5, -3.0]}]


def test_score_is_counted_in_metrics(client: TestClient) -> None:
    def count() -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith('candor_request_latency_seconds_count{endpoint="/v1/score"}'):
                return float(line.split()[-1])
        return 0.0

    before = count()
    client.post("/v1/score", json={"question": "q", "answer": "a", "samples": ["a", "b"]})
    assert count() == before + 1
