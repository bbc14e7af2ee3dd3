"""The remote engine against scripted vLLM OpenAI servers (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from service.config import Settings
from service.engine.factory import remote_engine
from service.engine.openai_remote import OpenAIRemoteEngine
from service.engine.protocol import ChatMessage, EngineClient, GenParams
from service.errors import BadRequest, EngineUnavailable

MSGS = [ChatMessage("user", "What is 2+2?")]


def _lp(token: str, lp: float, k: int) -> dict:
    top = [{"token": token, "logprob": lp}] + [
        {"token": f"alt{i}", "logprob": lp - 1 - i} for i in range(k - 1)]
    return {"token": token, "logprob": lp, "top_logprobs": top}


def chat_reply(body: dict) -> dict:
    k = body.get("top_logprobs") if body.get("logprobs") else None
    choices = []
    for i in range(body["n"]):
        words = ["4", "."] if i == 0 else ["four", "!", "?"]
        choice = {"index": i, "message": {"role": "assistant", "content": "".join(words)},
                  "finish_reason": "stop", "token_ids": list(range(len(words)))}
        if k is not None:
            choice["logprobs"] = {"content": [_lp(w, -0.5, k) for w in words]}
        choices.append(choice)
    return {"choices": choices[::-1], "usage": {"prompt_tokens": 17}}


class Server:
    """A scripted server: records requests, can be down or answer a status."""

    def __init__(self, name: str) -> None:
        self.name, self.down, self.status, self.seen = name, False, 200, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        self.seen.append((request.url.path, request))
        if request.url.path == "/health":
            return httpx.Response(200)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "nope"}})
        body = json.loads(request.content)
        if request.url.path == "/tokenize":
            return httpx.Response(200, json={"count": 11, "tokens": [0] * 11})
        if body.get("stream"):
            chunks = [{"choices": [{"index": 0, "delta": {"content": w}, "token_ids": [1],
                                    "logprobs": {"content": [_lp(w, -0.25, 2)]},
                                    "finish_reason": "stop" if j == 2 else None}],
                       "usage": {"prompt_tokens": 9}} for j, w in enumerate(["A", "B", "C"])]
            sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
            return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=chat_reply(body))


def make(*servers: Server, **kw) -> OpenAIRemoteEngine:
    by_host = {s.name: s for s in servers}

    def route(request: httpx.Request) -> httpx.Response:
        return by_host[request.url.host](request)

    urls = [f"http://{s.name}:8000/" for s in servers]
    return OpenAIRemoteEngine(urls, "m", api_key="k", transport=httpx.MockTransport(route), **kw)


async def test_generate_n_samples_with_logprobs_in_one_request() -> None:
    a = Server("a")
    eng = make(a)
    assert isinstance(eng, EngineClient)
    gen = await eng.generate(MSGS, GenParams(n=3, temperature=0.4, max_tokens=8,
                                             top_logprobs=2), "r1")
    assert [c.text for c in gen.completions] == ["4.", "four!?", "four!?"]  # by index
    assert [c.n_tokens for c in gen.completions] == [2, 3, 3]
    assert gen.completion_tokens == 8 and gen.prompt_tokens == 17
    tok = gen.completions[0].tokens[0]
    assert tok.token == "4" and tok.logprob == -0.5 and tok.top_logprobs == (-0.5, -1.5)
    assert len(a.seen) == 1
    req = a.seen[0][1]
    body = json.loads(req.content)
    assert body["n"] == 3 and body["logprobs"] is True and body["top_logprobs"] == 2
    assert body["model"] == "m" and "seed" not in body
    assert req.headers["authorization"] == "Bearer k" and req.headers["x-request-id"] == "r1"


async def test_no_logprobs_requested_no_tokens_but_counts() -> None:
    eng = make(Server("a"))
    gen = await eng.generate(MSGS, GenParams(n=2, temperature=0.4, max_tokens=8), "r")
    assert all(c.tokens == () for c in gen.completions)
    assert [c.n_tokens for c in gen.completions] == [2, 3]


async def test_requests_spread_over_urls_and_skip_a_dead_one() -> None:
    a, b = Server("a"), Server("b")
    eng = make(a, b)
    for i in range(4):
        await eng.generate(MSGS, GenParams(max_tokens=4), f"r{i}")
    assert len(a.seen) == 2 and len(b.seen) == 2
    a.down = True
    for i in range(4):
        await eng.generate(MSGS, GenParams(max_tokens=4), f"s{i}")
    assert len(b.seen) == 6  # every request went to b; a was tried once, then skipped
    assert not eng.upstreams[0].up(eng._clock())
    a.down = False
    assert await eng.health()
    assert eng.upstreams[0].up(eng._clock())  # a health probe brings it back


async def test_all_down_is_a_clear_503_and_health_false() -> None:
    a, b = Server("a"), Server("b")
    a.down = b.down = True
    eng = make(a, b, attempts=3)
    with pytest.raises(EngineUnavailable, match="unreachable"):
        await eng.generate(MSGS, GenParams(max_tokens=4), "r")
    assert not await eng.health()


async def test_status_mapping() -> None:
    a = Server("a")
    eng = make(a, attempts=2)
    a.status = 400
    with pytest.raises(BadRequest, match="nope"):
        await eng.generate(MSGS, GenParams(max_tokens=4), "r")
    assert len(a.seen) == 1  # a 400 is not retried
    a.status = 503
    with pytest.raises(EngineUnavailable):
        await eng.generate(MSGS, GenParams(max_tokens=4), "r")
    assert len(a.seen) == 3  # retried once


async def test_stream_deltas_and_final() -> None:
    eng = make(Server("a"))
    deltas = [d async for d in eng.stream(MSGS, GenParams(max_tokens=4, top_logprobs=2), "r")]
    assert "".join(d.text for d in deltas) == "ABC"
    assert [d.final is not None for d in deltas] == [False, False, True]
    final = deltas[-1].final
    assert final.text == "ABC" and final.n_tokens == 3 and len(final.tokens) == 3
    assert deltas[-1].prompt_tokens == 9


async def test_stream_closed_early_closes_the_response() -> None:
    closed = asyncio.Event()

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield b'data: {"choices": [{"index": 0, "delta": {"content": "x"}}]}\n\n'
            await asyncio.sleep(30)

        async def aclose(self) -> None:
            closed.set()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Body())

    eng = OpenAIRemoteEngine(["http://a"], "m", transport=httpx.MockTransport(handler))
    it = eng.stream(MSGS, GenParams(max_tokens=4), "r")
    first = await it.__anext__()
    assert first.text == "x"
    await it.aclose()
    assert closed.is_set()


async def test_cancel_is_not_retried() -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(30)
        return httpx.Response(200)

    eng = OpenAIRemoteEngine(["http://a", "http://b"], "m",
                             transport=httpx.MockTransport(handler))
    task = asyncio.create_task(eng.generate(MSGS, GenParams(max_tokens=4), "r"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1


async def test_count_prompt_tokens_asks_tokenize_once() -> None:
    a = Server("a")
    eng = make(a)
    assert await eng.count_prompt_tokens(MSGS) == 11
    assert await eng.count_prompt_tokens(MSGS) == 11
    paths = [p for p, _ in a.seen]
    assert paths == ["/tokenize"]
    body = json.loads(a.seen[0][1].content)
    assert body["add_generation_prompt"] is True and body["messages"][0]["role"] == "user"


def test_factory_reads_settings() -> None:
    s = Settings(engine="remote", engine_url="http://x:1, http://y:2/v1/",
                 engine_api_key="sk", engine_timeout_s=7)
    eng = remote_engine(s)
    assert [u.url for u in eng.upstreams] == ["http://x:1", "http://y:2"]
    assert eng.model_id == s.model_name
    with pytest.raises(ValueError, match="CANDOR_ENGINE_URL"):
        Settings(engine="remote")
