"""``CandorClient`` against a fake transport: bodies, typed models, errors, retries."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest
from conftest import BASE, FakeServer, answer_body, error, out_of_scope_body

from candor_client import (
    BadRequestError,
    CandorClient,
    CandorConnectionError,
    CandorTimeoutError,
    DeadlineExceededError,
    OverloadedError,
    UnauthorizedError,
    UnavailableError,
)
from candor_client._base import parse_retry_after, retry_delay


def make(server: FakeServer, **kw: object) -> CandorClient:
    http = httpx.Client(transport=httpx.MockTransport(server))
    return CandorClient(BASE, http_client=http, **kw)  # type: ignore[arg-type]


def test_answer_sends_only_set_fields_and_parses(server: FakeServer) -> None:
    with make(server, api_key="k-123") as c:
        ans = c.answer("capital of France?", policy={"max_stage": 1}, return_samples=True)
    assert server.last_json() == {"question": "capital of France?", "task": "auto",
                                  "policy": {"max_stage": 1}, "return_samples": True}
    req = server.requests[-1]
    assert req.headers["authorization"] == "Bearer k-123"
    assert str(req.url) == f"{BASE}/v1/answer"
    assert ans.answer == "Paris" and not ans.abstained and ans.decision == "answer"
    assert ans.stages[1].name == "consistency" and ans.usage.total_tokens == 56
    assert ans.signals.consistency == 0.9
    assert ans.signals.model_extra == {"future_signal": 1.0}  # newer server fields are kept


def test_claims_mode_is_sent_only_when_asked_and_parsed(server: FakeServer) -> None:
    with make(server) as c:
        plain = c.answer("capital of France?")
        assert "claims" not in server.last_json() and plain.claims is None
        ans = c.answer("capital of France?", claims=True)
    assert server.last_json()["claims"] is True
    assert ans.claims is not None and ans.claims.target_risk is None
    (claim,) = ans.claims.items
    assert (claim.text, claim.span, claim.kept, claim.signals.support) == (
        "Paris", (0, 5), True, 0.9)
    assert ans.answer[claim.span[0]:claim.span[1]] == claim.text


def test_abstention_is_a_value_not_an_error(server: FakeServer) -> None:
    with make(server) as c:
        ans = c.answer("unsure: 17*23?")
    assert ans.abstained and ans.reason == "low_confidence"


def test_the_scope_verdict_and_the_out_of_scope_policy(server: FakeServer) -> None:
    older = {k: v for k, v in answer_body("q").items() if k != "scope"}
    server.queue = [httpx.Response(200, json=out_of_scope_body("q")),
                    httpx.Response(200, json=older)]
    with make(server) as c:
        out = c.answer("q", policy={"out_of_scope": "abstain"})
        sent = server.last_json()
        old = c.answer("q")  # a server older than the scope test sends no scope
        with pytest.raises(ValueError, match="out_of_scope"):
            c.answer("q", policy={"out_of_scope": "maybe"})
    assert sent["policy"] == {"out_of_scope": "abstain"}
    assert out.abstained and out.reason == "out_of_scope" and out.calibrated
    assert out.calibration.target_risk is None
    assert (out.calibration.reason or "").startswith("out_of_scope:")
    scope = out.scope
    assert scope.tested and scope.in_scope is False and scope.profile == "factual"
    assert (scope.p_value, scope.level) == (0.0283, 0.05)
    assert scope.candidates == {"factual": 0.0283, "math": 0.0189}
    assert not old.scope.tested and old.scope.in_scope is None and old.scope.candidates == {}
    assert len(server.requests) == 2


def test_calibration_profiles_carry_their_scope_test(server: FakeServer) -> None:
    test = {"level": 0.05, "components": ["similarity", "question_length", "answer_length"],
            "k": 5, "bank": 105, "reference": 105, "fitted": "fit split (seed 2)",
            "heldout": {"level": 0.05, "heldout_in_scope": "175/180"}}
    factual = {"calibrated": True, "id": "factual-2", "profile": "factual",
               "tasks": ["factual"], "promise": "with probability >= 0.9, ...", "delta": 0.1,
               "scope": test}
    math = {**factual, "id": "math-1", "profile": "math", "tasks": ["math"], "scope": None}
    server.queue = [httpx.Response(200, json={"calibrated": True, "id": None,
                                              "calibrations": [factual, math]})]
    with make(server) as c:
        cal = c.calibration()
    fact, old = cal.calibrations
    assert fact.scope is not None and fact.scope.level == 0.05 and fact.scope.bank == 105
    assert fact.scope.heldout == {"level": 0.05, "heldout_in_scope": "175/180"}
    assert old.profile == "math" and old.scope is None  # an artifact without a scope test
    assert fact.delta == 0.1 and fact.model_extra == {}  # every field the server sends is typed
    # read by key, as when the summaries were plain dicts
    assert fact["delta"] == 0.1 and fact["scope"] == test and fact.get("nope", 1) == 1
    with pytest.raises(KeyError):
        fact["nope"]


def test_bad_policy_fails_before_sending(server: FakeServer) -> None:
    with make(server) as c, pytest.raises(ValueError, match="max_stage"):
        c.answer("q", policy={"max_stage": 7})
    assert server.requests == []


def test_score_feedback_calibration_health(server: FakeServer) -> None:
    with make(server) as c:
        sc = c.score("q", "a", samples=["a", "b"])
        fb = c.feedback("ans_0123", True)
        cal = c.calibration()
        h = c.health()
    assert sc.confidence == 0.7 and sc.signals.consistency == 0.75 and not sc.scope.tested
    assert fb.id == "ans_0123" and fb.stored
    assert cal.calibrated is False and cal.model_extra == {"reason": "no artifact loaded"}
    assert h.live and h.ready and h.model == "SmolLM2-135M-Instruct"
    assert [r.url.path for r in server.requests][-2:] == ["/healthz", "/readyz"]


def test_health_reports_a_loading_engine(server: FakeServer, sleeps: list[float]) -> None:
    server.queue = [httpx.Response(200, json={"status": "ok"}),
                    error(503, "engine_unavailable", "not ready: loading")]
    with make(server) as c:
        h = c.health()
    assert h.live and not h.ready and h.detail == "not ready: loading" and sleeps == []


@pytest.mark.parametrize(("status", "exc"), [
    (400, BadRequestError), (422, BadRequestError), (413, BadRequestError),
    (401, UnauthorizedError), (504, DeadlineExceededError),
])
def test_errors_are_typed_and_not_retried(server: FakeServer, sleeps: list[float], status: int,
                                          exc: type[Exception]) -> None:
    server.queue = [error(status, "x_error", "bad thing", param="question")]
    with make(server) as c, pytest.raises(exc) as info:
        c.answer("q")
    assert info.value.status_code == status and info.value.param == "question"  # type: ignore[attr-defined]
    assert info.value.message == "bad thing" and sleeps == []  # type: ignore[attr-defined]


def test_retries_429_then_succeeds_honouring_retry_after(server: FakeServer,
                                                         sleeps: list[float]) -> None:
    server.queue = [error(429, "overloaded_error", "busy", headers={"Retry-After": "2"}),
                    error(503, "engine_unavailable", "loading")]
    with make(server) as c:
        assert c.answer("q").answer == "Paris"
    assert len(server.requests) == 3
    assert sleeps[0] == 2.0 and 0.375 <= sleeps[1] <= 1.0  # Retry-After, then backoff


def test_retries_are_bounded(server: FakeServer, sleeps: list[float]) -> None:
    server.queue = [error(429, "overloaded_error", "busy")] * 5
    with make(server, max_retries=1) as c, pytest.raises(OverloadedError) as info:
        c.answer("q")
    assert len(server.requests) == 2 and len(sleeps) == 1
    server.queue = [error(503, "engine_unavailable", "down")] * 5
    with make(server).with_options(max_retries=0) as c, pytest.raises(UnavailableError):
        c.answer("q")
    assert info.value.retry_after is None


def test_connection_errors_retry_then_raise(sleeps: list[float]) -> None:
    calls: list[int] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused", request=request)

    http = httpx.Client(transport=httpx.MockTransport(refuse))
    with CandorClient(BASE, http_client=http, max_retries=2) as c, \
            pytest.raises(CandorConnectionError, match="cannot reach"):
        c.health()  # health never retries
    assert len(calls) == 1
    with CandorClient(BASE, http_client=http, max_retries=2) as c, \
            pytest.raises(CandorConnectionError):
        c.answer("q")
    assert len(calls) == 4 and len(sleeps) == 2


def test_read_timeout_is_not_retried(sleeps: list[float]) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    http = httpx.Client(transport=httpx.MockTransport(slow))
    with CandorClient(BASE, http_client=http) as c, pytest.raises(CandorTimeoutError):
        c.answer("q")
    assert sleeps == []


def test_retry_after_forms_and_backoff_caps() -> None:
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after(date) or 0) <= 31
    assert retry_delay(httpx.Response(429, headers={"Retry-After": "999"}), 0) == 60.0
    assert 6.0 <= retry_delay(None, 10) <= 8.0


def test_env_defaults_timeout_and_ownership(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDOR_BASE_URL", "http://env.test:9/")
    monkeypatch.setenv("CANDOR_API_KEY", "from-env")
    c = CandorClient(timeout=3)
    assert c.base_url == "http://env.test:9" and c._opts.api_key == "from-env"
    assert c._opts.timeout.read == 3
    fast = c.with_options(timeout=1, max_retries=0)
    assert fast._opts.timeout.read == 1 and fast._http is c._http
    fast.close()
    assert not c._http.is_closed  # the copy does not own the pool
    c.close()
    assert c._http.is_closed
    mine = httpx.Client()
    CandorClient(http_client=mine).close()
    assert not mine.is_closed  # a caller's client is the caller's to close
    mine.close()
