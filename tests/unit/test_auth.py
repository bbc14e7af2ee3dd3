"""API keys and request limits on the fake engine: 401/413/400 in the one error shape."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine

KEYS = "k-alpha,k-beta"


def client(**settings: object) -> TestClient:
    s = Settings(**{"samples_n": 2, **settings})  # type: ignore[arg-type]
    return TestClient(create_app(s, engine=FakeEngine(), embedder=FakeEmbedder()),
                      raise_server_exceptions=False)


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer nope"}, {"x-api-key": "k-alph"}, {"Authorization": "Bearer "},
    {"Authorization": "k-alpha"},  # no Bearer scheme
])
def test_missing_or_wrong_key_is_401(headers: dict[str, str]) -> None:
    with client(api_keys=KEYS) as c:
        r = c.post("/v1/answer", json={"question": "q"}, headers=headers)
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["type"] == "authentication_error" and err["code"] == 401
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer k-alpha"}, {"authorization": "bearer k-beta"},
    {"x-api-key": "k-beta"},
])
def test_any_configured_key_is_accepted(headers: dict[str, str]) -> None:
    with client(api_keys=KEYS) as c:
        r = c.post("/v1/answer", json={"question": "q"}, headers=headers)
    assert r.status_code == 200 and r.json()["decision"] in ("answer", "abstain")


def test_probes_open_or_closed_by_setting() -> None:
    with client(api_keys=KEYS) as c:
        assert [c.get(p).status_code for p in ("/healthz", "/readyz", "/metrics")] == [200] * 3
        assert c.get("/v1/models").status_code == 401
        assert c.get("/openapi.json").status_code == 401
    with client(api_keys=KEYS, open_probes=False) as c:
        assert [c.get(p).status_code for p in ("/healthz", "/readyz", "/metrics")] == [401] * 3
        assert c.get("/healthz", headers={"x-api-key": "k-alpha"}).status_code == 200


def test_no_keys_means_open() -> None:
    with client() as c:
        assert c.post("/v1/answer", json={"question": "q"}).status_code == 200


def test_rejections_are_counted_in_metrics() -> None:
    with client(api_keys=KEYS) as c:
        c.post("/v1/answer", json={"question": "q"})
        text = c.get("/metrics").text
    assert 'candor_errors_total{status="401"} 1.0' in text


def test_body_over_limit_is_413_by_header_and_by_stream() -> None:
    with client(max_body_bytes=2048) as c:
        r = c.post("/v1/answer", json={"question": "x" * 4000})
        assert r.status_code == 413
        assert r.json()["error"]["type"] == "payload_too_large"
        assert "max_body_bytes=2048" in r.json()["error"]["message"]

        def chunks():  # no Content-Length: the guard counts the streamed bytes
            for _ in range(10):
                yield b"x" * 500

        r = c.post("/v1/answer", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413


def test_question_chars_and_tokens_against_the_context() -> None:
    with client(max_question_chars=100) as c:
        r = c.post("/v1/answer", json={"question": "y" * 101})
        assert r.status_code == 413 and r.json()["error"]["param"] == "question"
        assert "limit is 100" in r.json()["error"]["message"]
    with client(max_model_len=128, max_tokens_limit=64, default_max_tokens=64) as c:
        r = c.post("/v1/answer", json={"question": "word " * 70})  # fake: 1 token a word
        assert r.status_code == 400 and r.json()["error"]["param"] == "question"
        assert "context of 128 tokens" in r.json()["error"]["message"]


def test_score_samples_limit_names_it() -> None:
    with client(max_score_samples=3) as c:
        r = c.post("/v1/score", json={"question": "q", "answer": "a",
                                      "samples": ["a", "b", "c", "d"]})
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "samples"
        assert "max_score_samples is 3" in r.json()["error"]["message"]
        ok = c.post("/v1/score", json={"question": "q", "answer": "a", "samples": ["a", "b"]})
        assert ok.status_code == 200


def test_the_guards_refusals_are_the_error_trees_rendered_by_the_one_renderer() -> None:
    """401 and 413 answer before any route, yet byte for byte as a route raising
    ``Unauthorized``/``PayloadTooLarge`` would (``api/errors.py``'s ``render``)."""
    from service.api.errors import render
    from service.errors import PayloadTooLarge, Unauthorized

    with client(api_keys=KEYS, max_body_bytes=2048) as c:
        denied = c.post("/v1/answer", json={"question": "q"})
        big = c.post("/v1/answer", json={"question": "x" * 4000}, headers={"x-api-key": "k-beta"})
    want = render(Unauthorized("missing or invalid API key (send 'Authorization: Bearer <key>')",
                               headers={"WWW-Authenticate": "Bearer"}))
    assert denied.content == want.body == (
        b'{"error":{"type":"authentication_error","message":"missing or invalid API key '
        b"(send 'Authorization: Bearer <key>')\",\"param\":null,\"code\":401}}")
    assert denied.headers["www-authenticate"] == "Bearer"
    assert big.content == render(PayloadTooLarge("request body exceeds max_body_bytes=2048",
                                                 param="body")).body
    assert big.json()["error"] == {"type": "payload_too_large", "param": "body", "code": 413,
                                   "message": "request body exceeds max_body_bytes=2048"}
