"""Candor's verdict in response headers and the OpenAI ``refusal`` convention, on a fake engine.

Any HTTP client reads the decision without parsing the body; an OpenAI client tells an
abstention from an answer by ``message.refusal`` (``content`` keeps the abstention message,
so a client that only prints ``content`` is unchanged).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from service.api.headers import answer_headers
from service.config import Settings
from service.schemas import AnswerResponse
from tests.fakes import FakeEngine, Script
from tests.unit.test_api import make_client
from tests.unit.test_promise import client as calibrated_client
from tests.unit.test_promise import write

ABSTAIN = Settings().abstain_message
SCRIPTS = {"sure": Script(greedy="Paris", logprob=-0.01),
           "doubt": Script(greedy="maybe 7", logprob=-1.5, samples=["7", "8", "7", "9"])}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client(FakeEngine(scripts=SCRIPTS)) as c:
        yield c


def candor(r: httpx.Response) -> dict[str, str]:
    return {k.title(): v for k, v in r.headers.items() if k.lower().startswith("candor-")}


def chat(client: TestClient, question: str, **extra: Any) -> httpx.Response:
    return client.post("/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": question}], **extra})


def sse(r: httpx.Response) -> list[Any]:
    data = [ln[6:] for ln in r.text.splitlines() if ln.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def test_answer_headers_mirror_the_body(client: TestClient) -> None:
    for question, decision in (("sure: capital?", "answer"), ("doubt: 3+4?", "abstain")):
        r = client.post("/v1/answer", json={"question": question})
        body, h = r.json(), candor(r)
        assert h["Candor-Id"] == body["id"] and h["Candor-Decision"] == decision
        assert float(h["Candor-Confidence"]) == pytest.approx(body["confidence"], abs=5e-5)
        assert h["Candor-Stage"] == str(body["stage_reached"])
        assert h["Candor-Calibrated"] == "false" and h["Candor-Scope"] == "untested"
        assert h["Candor-Audit"] == "false"
        assert h.get("Candor-Reason") == body["reason"]
        assert "Candor-Target-Risk" not in h  # uncalibrated: no promise, so no header


def test_chat_json_and_guarded_stream_carry_the_same_headers(client: TestClient) -> None:
    plain = chat(client, "doubt: 3+4?")
    streamed = chat(client, "doubt: 3+4?", stream=True, stream_mode="guarded")
    for r in (plain, streamed):
        h = candor(r)
        assert h["Candor-Decision"] == "abstain" and h["Candor-Reason"] == "low_confidence"
    assert candor(plain)["Candor-Id"] == plain.json()["id"]
    assert candor(streamed)["Candor-Id"] == sse(streamed)[-1]["id"]


def test_live_stream_headers_hold_only_the_id(client: TestClient) -> None:
    r = chat(client, "doubt: 3+4?", stream=True, stream_mode="live")
    final = sse(r)[-1]
    assert candor(r) == {"Candor-Id": final["id"]}  # the verdict rides on the last chunk
    assert final["uncertainty"]["decision"] == "abstain"


def test_score_headers(client: TestClient) -> None:
    r = client.post("/v1/score", json={"question": "doubt: 3+4?", "answer": "7"})
    h, body = candor(r), r.json()
    assert body["confidence"] is None  # uncalibrated: /v1/score has no map to score with
    assert h == {"Candor-Calibrated": "false", "Candor-Scope": "untested"}


def test_errors_carry_no_verdict(client: TestClient) -> None:
    r = client.post("/v1/answer", json={"question": ""})
    assert r.status_code == 422 and candor(r) == {}


def test_target_risk_header_only_where_the_promise_applies(tmp_path: Path) -> None:
    with calibrated_client(write(tmp_path)) as c:
        kept = c.post("/v1/answer", json={"question": "k03", "policy": {"target_risk": 0.3}})
        off = c.post("/v1/answer", json={"question": "k03", "max_tokens": 7,
                                          "policy": {"target_risk": 0.3}})
        scored = c.post("/v1/score", json={
            "question": "k03", "answer": "3", "token_logprobs": [-0.2],
            "top_logprobs": [[-0.2, -2.0]], "samples": ["3", "3", "2", "3"]})
    h = candor(kept)
    assert h["Candor-Calibrated"] == "true" and h["Candor-Target-Risk"] == "0.3"
    assert h["Candor-Delta"] == f"{kept.json()['calibration']['delta']:g}"
    assert h["Candor-Profile"] == kept.json()["calibration"]["profile"]
    assert off.json()["calibration"]["target_risk"] is None
    assert "Candor-Target-Risk" not in candor(off) and candor(off)["Candor-Calibrated"] == "true"
    assert float(candor(scored)["Candor-Confidence"]) == pytest.approx(
        scored.json()["confidence"], abs=5e-5)


def test_header_values_are_ascii_whatever_the_profile_name(client: TestClient) -> None:
    body = client.post("/v1/answer", json={"question": "sure: capital?"}).json()
    body["calibration"]["profile"] = "fäctual\r\nX-Injected: 1"
    h = answer_headers(AnswerResponse.model_validate(body))
    assert h["Candor-Profile"] == "f\\xe4ctual\\r\\nX-Injected: 1"
    assert all(v.isascii() and "\n" not in v for v in h.values())


# -- the OpenAI refusal convention ------------------------------------------------------------
def test_abstention_is_an_openai_refusal(client: TestClient) -> None:
    sure, doubt = chat(client, "sure: capital?").json(), chat(client, "doubt: 3+4?").json()
    assert sure["choices"][0]["message"] == {"role": "assistant", "content": "Paris",
                                             "refusal": None}
    msg = doubt["choices"][0]
    assert msg["message"]["refusal"] == msg["message"]["content"] == ABSTAIN
    assert msg["finish_reason"] == "stop"


@pytest.mark.parametrize("mode", ["guarded", "live"])
def test_streamed_abstention_sends_the_refusal(client: TestClient, mode: str) -> None:
    chunks = sse(chat(client, "doubt: 3+4?", stream=True, stream_mode=mode))
    refusal = "".join(c["choices"][0]["delta"].get("refusal") or "" for c in chunks)
    assert refusal == ABSTAIN
    answered = sse(chat(client, "sure: capital?", stream=True, stream_mode=mode))
    assert not any(c["choices"][0]["delta"].get("refusal") for c in answered)


def test_the_openai_sdk_reads_refusal_and_headers(client: TestClient) -> None:
    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    raw = sdk.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "doubt: 3+4?"}])
    out = raw.parse()
    assert out.choices[0].message.refusal == ABSTAIN
    assert raw.headers["candor-decision"] == "abstain"
    sure = sdk.chat.completions.create(model="m",
                                       messages=[{"role": "user", "content": "sure: x"}])
    assert sure.choices[0].message.refusal is None
    stream = sdk.chat.completions.create(model="m", stream=True,
                                         messages=[{"role": "user", "content": "doubt: 3+4?"}])
    assert "".join(c.choices[0].delta.refusal or "" for c in stream if c.choices) == ABSTAIN
