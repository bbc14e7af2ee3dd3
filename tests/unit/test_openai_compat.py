"""``/v1/chat/completions`` on a fake engine: mapping, abstention, errors, the OpenAI SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from tests.fakes import FakeEngine, Script
from tests.unit.test_api import make_client

ABSTAIN = "I am not confident enough to answer this question."


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(scripts={
        "sure": Script(greedy="Paris", logprob=-0.01),
        "doubt": Script(greedy="maybe 7", logprob=-1.5, samples=["7", "8", "7", "9"]),
    })


@pytest.fixture
def client(engine: FakeEngine) -> Iterator[TestClient]:
    with make_client(engine) as c:
        yield c


def chat(client: TestClient, content: str, **extra: object) -> httpx.Response:
    body = {"model": "x", "messages": [{"role": "user", "content": content}], **extra}
    return client.post("/v1/chat/completions", json=body)


def test_confident_answer_is_an_openai_completion(client: TestClient) -> None:
    r = chat(client, "sure: capital of France?")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "SmolLM2-135M-Instruct"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Paris", "refusal": None}
    assert choice["finish_reason"] == "stop"
    unc = body["uncertainty"]
    assert unc["decision"] == "answer" and unc["abstained"] is False
    assert unc["id"] == body["id"] and unc["answer"] == "Paris"
    assert unc["confidence"] == pytest.approx(0.99, abs=0.001)
    assert body["usage"] == unc["usage"]


def test_abstention_carries_the_configured_message(client: TestClient) -> None:
    body = chat(client, "doubt: 3+4?").json()
    assert body["choices"][0]["message"]["content"] == ABSTAIN
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["uncertainty"]["abstained"] is True
    assert body["uncertainty"]["answer"] == "maybe 7"  # the model's answer stays inspectable


def test_system_prompt_options_and_metrics_label(client: TestClient, engine: FakeEngine) -> None:
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "sure: capital?"}]}]
    r = client.post("/v1/chat/completions", json={
        "messages": msgs, "max_tokens": 7, "temperature": 0.9,
        "policy": {"max_stage": 0}, "task": "factual"})
    assert r.status_code == 200, r.text
    assert engine.calls[0][1].max_tokens == 7 and engine.calls[0][1].temperature == 0.0
    assert r.json()["uncertainty"]["stage_reached"] == 0
    metrics = client.get("/metrics").text
    assert 'candor_requests_total{decision="answer",endpoint="/v1/chat/completions"}' in metrics


def test_length_finish_reason(client: TestClient) -> None:
    body = chat(client, "sure: capital?", max_tokens=1).json()
    assert body["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 2}, "n"), ({"stop": ["\n"]}, "stop"), ({"logprobs": True}, "logprobs"),
    ({"tools": [{"type": "function"}]}, "tools"),
])
def test_conflicting_options_are_rejected(client: TestClient, extra: dict[str, object],
                                          param: str) -> None:
    r = chat(client, "sure: x?", **extra)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == (
        "invalid_request_error")


@pytest.mark.parametrize("messages", [
    [{"role": "system", "content": "hi"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
     {"role": "user", "content": "c"}],
    [{"role": "user", "content": "   "}],
])
def test_bad_conversations_are_400(client: TestClient, messages: list[dict[str, str]]) -> None:
    r = client.post("/v1/chat/completions", json={"messages": messages})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_validation_errors_are_422_in_the_error_shape(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json={"messages": []})
    assert r.status_code == 422 and r.json()["error"]["param"] == "messages"
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}],
                                                  "policy": {"max_stage": 9}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "policy.max_stage"


def test_stream_sends_answer_then_uncertainty(client: TestClient) -> None:
    r = chat(client, "sure: capital?", stream=True)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [ln[len("data: "):] for ln in r.text.splitlines() if ln.startswith("data: ")]
    assert events[-1] == "[DONE]"
    first, last = (json.loads(e) for e in events[:-1])
    assert first["choices"][0]["delta"]["content"] == "Paris"
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["uncertainty"]["decision"] == "answer"


def test_openai_sdk_reads_answer_and_uncertainty(client: TestClient) -> None:
    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=client)
    out = sdk.chat.completions.create(
        model="SmolLM2-135M-Instruct",
        messages=[{"role": "user", "content": "doubt: 3+4?"}],
        extra_body={"policy": {"max_stage": 1}},
    )
    assert out.choices[0].message.content == ABSTAIN
    unc = out.model_extra["uncertainty"]  # type: ignore[index]
    assert unc["abstained"] is True and unc["stage_reached"] == 1
    sure = sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "sure: capital?"}])
    assert sure.choices[0].message.content == "Paris"
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="m", n=2,
                                    messages=[{"role": "user", "content": "sure: x"}])


def test_answer_rules_the_chat_schema_lacks_are_400(client: TestClient,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from service import openai_schemas
    from service.schemas import AnswerRequest

    def stricter(**fields: object) -> AnswerRequest:
        return AnswerRequest.model_validate({**fields, "question": ""})

    monkeypatch.setattr(openai_schemas, "AnswerRequest", stricter)
    r = chat(client, "sure: x?")
    assert r.status_code == 400 and r.json()["error"]["param"] == "question"
