"""A scripted Candor server on ``httpx.MockTransport`` (no network, no server package).

The bodies follow the server's v1 contract (``service/schemas.py``); the integration
tests in ``tests/integration/test_clients.py`` check the same client against the real one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

BASE = "http://candor.test"
UNTESTED = {"tested": False, "profile": None, "p_value": None, "level": None,
            "in_scope": None, "candidates": {}}


def out_of_scope_body(question: str) -> dict[str, Any]:
    """A calibrated server's answer to a request outside every profile's scope."""
    reason = ("out_of_scope: the request is outside the scope of every calibration profile; "
              "the nearest is factual (p = 0.0283 < level 0.05); it is not drawn like the "
              "questions the promise was calibrated on, so no error rate is promised")
    return {**answer_body(question, abstained=True), "reason": "out_of_scope",
            "calibrated": True,
            "calibration": {"calibrated": True, "id": "factual-2", "profile": "factual",
                            "target_risk": None, "delta": 0.1, "threshold": 0.8,
                            "reason": reason},
            "scope": {"tested": True, "profile": "factual", "p_value": 0.0283, "level": 0.05,
                      "in_scope": False, "candidates": {"factual": 0.0283, "math": 0.0189}}}


def answer_body(question: str, abstained: bool = False) -> dict[str, Any]:
    return {
        "id": "ans_0123", "object": "candor.answer", "model": "SmolLM2-135M-Instruct",
        "answer": "Paris", "abstained": abstained,
        "decision": "abstain" if abstained else "answer",
        "reason": "low_confidence" if abstained else None,
        "confidence": 0.31 if abstained else 0.92, "calibrated": False, "stage_reached": 1,
        "fallback": None,
        "signals": {"token_entropy": 0.4, "mean_logprob": -0.3, "consistency": 0.9,
                    "n_clusters": 2, "homogeneous": False, "future_signal": 1.0},
        "stages": [
            {"name": "token", "stage": 0, "confidence": 0.6, "ms": 210.0, "tokens": 4,
             "informative": True, "note": None},
            {"name": "consistency", "stage": 1, "confidence": 0.92, "ms": 500.0, "tokens": 40,
             "informative": True, "note": None},
        ],
        "skipped": [], "calibration": {"calibrated": False, "id": None}, "scope": UNTESTED,
        "samples": None, "logprobs": None,
        "usage": {"prompt_tokens": 12, "completion_tokens": 44, "total_tokens": 56},
        "question_echo": question,
    }


# claims mode's report for the answer "Paris" (service/schemas.py ClaimsReport)
CLAIMS = {"items": [{"text": "Paris", "span": [0, 5], "part": None, "confidence": 0.8,
                     "kept": True, "signals": {"claim_mean_nll": 0.2, "claim_n_tokens": 1,
                                               "support": 0.9}}],
          "answer": "Paris", "splitter": "rules", "calibrated": False, "id": None,
          "threshold": None, "target_risk": None, "delta": None,
          "reason": "uncalibrated: no claim calibration is served for this profile"}


@dataclass
class FakeServer:
    """Routes requests; ``queue`` holds scripted responses served before the normal ones."""

    queue: list[httpx.Response] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.queue:
            return self.queue.pop(0)
        route: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {
            ("POST", "/v1/answer"): self._answer,
            ("POST", "/v1/score"): lambda r: httpx.Response(200, json={
                "object": "candor.score", "confidence": 0.7, "calibrated": False,
                "scope": UNTESTED, "signals": {"consistency": 0.75}, "stages": [],
                "skipped": ["token: missing"]}),
            ("POST", "/v1/feedback"): lambda r: httpx.Response(
                200, json={"id": json.loads(r.content)["id"], "stored": True}),
            ("GET", "/v1/calibration"): lambda r: httpx.Response(
                200, json={"calibrated": False, "reason": "no artifact loaded"}),
            ("GET", "/healthz"): lambda r: httpx.Response(200, json={"status": "ok"}),
            ("GET", "/readyz"): lambda r: httpx.Response(
                200, json={"status": "ready", "model": "SmolLM2-135M-Instruct"}),
        }
        handler = route.get((request.method, request.url.path))
        if handler is None:
            return error(404, "not_found_error", "Not Found")
        return handler(request)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        out = answer_body(body["question"], abstained="unsure" in body["question"])
        if body.get("claims"):
            out["claims"] = CLAIMS
        return httpx.Response(200, json=out)

    def last_json(self) -> Any:
        return json.loads(self.requests[-1].content)


def error(status: int, type_: str, message: str, param: str | None = None,
          headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"type": type_, "message": message, "param": param, "code": status}}
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record (instead of wait) every retry delay, for the sync and the async client."""
    delays: list[float] = []

    async def fake_async_sleep(s: float) -> None:
        delays.append(s)

    monkeypatch.setattr("candor_client.client.time.sleep", delays.append)
    monkeypatch.setattr("candor_client.async_client.asyncio.sleep", fake_async_sleep)
    return delays
