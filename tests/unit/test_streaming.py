"""``stream=true`` on /v1/chat/completions: guarded and live modes, errors, disconnects.

The OpenAI SDK's streaming iterator reads both modes unchanged; a client that goes away
mid-stream cancels the run (the engine's request is closed, no stage after it runs).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.engine.protocol import ChatMessage, GenParams, TextDelta
from service.errors import EngineUnavailable
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine, Script
from tests.unit.test_api import make_client

pytestmark = pytest.mark.filterwarnings("ignore:You should not use the 'timeout'")
ABSTAIN = Settings().abstain_message
SCRIPTS = {
    "sure": Script(greedy="The capital is Paris", logprob=-0.01),
    "doubt": Script(greedy="maybe 7", logprob=-1.5, samples=["7", "8", "7", "9"]),
}


def events(text: str) -> list[Any]:
    data = [ln[len("data: "):] for ln in text.splitlines() if ln.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def post(client: TestClient, question: str, mode: str, **extra: Any) -> Any:
    return client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": question}], "stream": True,
        "stream_mode": mode, **extra})


def test_live_streams_tokens_then_the_verdict() -> None:
    engine = FakeEngine(scripts=dict(SCRIPTS))
    with make_client(engine) as client:
        r = post(client, "sure: capital of France?", "live")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    chunks = events(r.text)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert pieces == ["The", " capital", " is", " Paris"]  # one chunk per engine delta
    last = chunks[-1]
    assert last["uncertainty"]["decision"] == "answer" and last["choices"][0]["delta"] == {}
    assert last["choices"][0]["finish_reason"] == "stop" and last["usage"]["total_tokens"] > 0
    assert {c["id"] for c in chunks} == {last["uncertainty"]["id"]}
    # the greedy pass came from stream() (the fake's stream wraps its generate: "-inner")
    assert [rid.split("-", 1)[1] for rid, _ in engine.calls] == ["greedy", "greedy-inner"]


def test_live_abstention_sends_the_message_last() -> None:
    with make_client(FakeEngine(scripts=dict(SCRIPTS))) as client:
        r = post(client, "doubt: 3+4?", "live")
    chunks = events(r.text)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert chunks[-1]["uncertainty"]["abstained"] is True
    assert text == f"maybe 7\n\n{ABSTAIN}"
    assert chunks[-1]["uncertainty"]["stage_reached"] >= 1  # the cascade ran on after it


def test_guarded_holds_text_until_the_decision() -> None:
    with make_client(FakeEngine(scripts=dict(SCRIPTS))) as client:
        sure = events(post(client, "sure: capital?", "guarded").text)
        doubt = events(post(client, "doubt: 3+4?", "guarded").text)
    assert [c["choices"][0]["delta"].get("content") for c in sure] == [
        "The capital is Paris", None]
    assert doubt[0]["choices"][0]["delta"]["content"] == ABSTAIN  # never the unvetted text
    assert doubt[-1]["uncertainty"]["abstained"] is True


@pytest.mark.parametrize("mode", ["guarded", "live"])
def test_openai_sdk_iterates_both_modes(mode: str) -> None:
    with make_client(FakeEngine(scripts=dict(SCRIPTS))) as client:
        sdk = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=client)
        chunks = list(sdk.chat.completions.create(
            model="m", stream=True, extra_body={"stream_mode": mode},
            messages=[{"role": "user", "content": "sure: capital?"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "The capital is Paris"
    assert (chunks[-1].model_extra or {})["uncertainty"]["decision"] == "answer"


def test_live_errors_before_the_first_token_keep_their_status() -> None:
    with make_client(FakeEngine(scripts=dict(SCRIPTS))) as client:
        r = post(client, "sure: x", "live", max_tokens=10**6)
        bad = post(client, "sure: x", "sideways")
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "stream_mode"


@dataclass
class DiesMidStream(FakeEngine):
    async def stream(self, messages: list[ChatMessage], params: GenParams,
                     request_id: str) -> AsyncIterator[TextDelta]:
        yield TextDelta("The")
        raise EngineUnavailable("fake engine died mid-stream")


def test_live_error_after_the_first_token_is_an_error_event() -> None:
    with make_client(DiesMidStream()) as client:
        chunks = events(post(client, "sure: x", "live").text)
        sdk = openai.OpenAI(base_url="http://testserver/v1", api_key="x", http_client=client)
        with pytest.raises(openai.APIError, match="died mid-stream"):
            list(sdk.chat.completions.create(
                model="m", stream=True, extra_body={"stream_mode": "live"},
                messages=[{"role": "user", "content": "sure: x"}]))
    assert chunks[1]["choices"][0]["delta"]["content"] == "The"
    assert chunks[-1]["error"]["type"] == "engine_unavailable"
    assert chunks[-1]["error"]["code"] == 503


async def test_disconnect_mid_stream_cancels_the_engine_request() -> None:
    engine = FakeEngine(scripts=dict(SCRIPTS), delay_s=0.05)
    app = create_app(Settings(samples_n=4), engine=engine, embedder=FakeEmbedder())
    body = json.dumps({"messages": [{"role": "user", "content": "doubt: 3+4?"}],
                       "stream": True, "stream_mode": "live"}).encode()
    sent: list[dict[str, Any]] = []
    gone = asyncio.Event()
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)
        if b"maybe" in msg.get("body", b""):  # the first real token: the reader leaves
            gone.set()

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
             "query_string": b"", "root_path": "", "server": ("t", 80), "client": ("c", 1),
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app(scope, receive, send), timeout=10)
        await asyncio.sleep(0.5)  # room for an orphaned run to show itself (it must not)
        state = app.state.candor
        assert engine.active == set()  # the streamed greedy request was closed
        assert state.inflight == 0
    bodies = b"".join(m.get("body", b"") for m in sent)
    assert b"maybe" in bodies and b"uncertainty" not in bodies
    assert not any(rid.endswith("-samples") for rid, _ in engine.calls)  # cascade stopped
