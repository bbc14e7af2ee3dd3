"""``EngineClient`` over one or more vLLM OpenAI-compatible servers (``CANDOR_ENGINE=remote``).

* Chat completions with ``logprobs``/``top_logprobs``; ``n`` samples in one request, so the
  server shares the prompt's prefix cache between them. ``return_token_ids`` (a vLLM
  extension) gives exact per-completion token counts.
* Several base URLs: requests go round-robin over the ones not marked down; a connection
  failure (or a 502/503/504) marks a URL down for ``eject_s`` and the request moves on to the
  next one (tenacity: bounded attempts, jittered backoff). ``health`` probes every URL's
  ``/health`` and brings recovered ones back. ``CancelledError`` is never retried.
* Cancellation: a cancelled caller closes its HTTP request (``finally`` on streams);
  vLLM's ``with_cancellation`` then aborts the engine request.
* Token counts come from the server's ``/tokenize`` (chat form, generation prompt added),
  so the count is the engine's own, with no tokenizer to ship or keep in sync here.
* ``chat_template_hash`` is None: the server does not publish its template (artifacts that
  pin one warn rather than refuse; see docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity import wait_exponential_jitter as jitter

from service.engine.load import combine, parse_load
from service.engine.protocol import (
    ChatMessage,
    Completion,
    EngineLoad,
    Generation,
    GenParams,
    TextDelta,
    TokenInfo,
)
from service.errors import BadRequest, DeadlineExceeded, EngineUnavailable

log = logging.getLogger(__name__)

# Failures where the request certainly produced no answer: safe to send to another URL.
_TRANSPORT_RETRY = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError,
                    httpx.PoolTimeout)
_STATUS_RETRY = frozenset({502, 503, 504})
KEEPALIVE_EXPIRY_S = 3.0  # below vLLM's keep-alive (VLLM_HTTP_TIMEOUT_KEEP_ALIVE, 5 s)


class _Retry(Exception):
    """One attempt failed in a way another URL (or a second try) may not."""


@dataclass
class Upstream:
    url: str
    down_until: float = 0.0

    def up(self, now: float) -> bool:
        return self.down_until <= now


class OpenAIRemoteEngine:
    """Talks to ``urls`` (each a server root such as ``http://vllm:8000``)."""

    chat_template_hash: str | None = None

    def __init__(self, urls: list[str], model_id: str, *, api_key: str | None = None,
                 timeout_s: float = 300.0, connect_timeout_s: float = 5.0, attempts: int = 3,
                 eject_s: float = 5.0, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Any = time.monotonic) -> None:
        if not urls:
            raise ValueError("the remote engine needs at least one URL (CANDOR_ENGINE_URL)")
        self.model_id = model_id
        # a server root; an OpenAI-style base URL ending in /v1 means the same server
        self.upstreams = [Upstream(u.strip().rstrip("/").removesuffix("/v1")) for u in urls]
        self.attempts, self.eject_s, self._clock = attempts, eject_s, clock
        self.connect_timeout_s = connect_timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers, transport=transport,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            # idle connections expire before vLLM's own 5 s keep-alive closes them, so no
            # request goes out on a connection vLLM is closing
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64,
                                keepalive_expiry=KEEPALIVE_EXPIRY_S))
        self._rr = itertools.count()
        self._counts: OrderedDict[tuple[tuple[str, str], ...], int] = OrderedDict()

    # -- routing -------------------------------------------------------------------------------
    def _pick(self) -> Upstream:
        """The next URL not marked down, round-robin; all down: the next one anyway."""
        now, start, n = self._clock(), next(self._rr), len(self.upstreams)
        for i in range(n):
            up = self.upstreams[(start + i) % n]
            if up.up(now):
                return up
        return self.upstreams[start % n]

    async def _send(self, path: str, body: dict[str, Any], request_id: str,
                    stream: bool = False) -> httpx.Response:
        """POST to one healthy URL, moving on to the next on a connection failure."""
        try:
            async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self.attempts), wait=jitter(initial=0.05, max=1.0),
                    retry=retry_if_exception_type(_Retry), reraise=True):
                with attempt:
                    return await self._attempt(self._pick(), path, body, request_id, stream)
        except _Retry as exc:
            raise EngineUnavailable(
                f"the inference engine is unreachable ({exc}); retry later",
                headers={"Retry-After": "5"}) from exc
        except httpx.TimeoutException as exc:
            raise DeadlineExceeded(f"the inference engine did not answer in time ({exc!r})"
                                   ) from exc
        raise AssertionError("unreachable")  # pragma: no cover - tenacity reraises

    async def _attempt(self, up: Upstream, path: str, body: dict[str, Any], request_id: str,
                       stream: bool) -> httpx.Response:
        req = self._client.build_request("POST", up.url + path, json=body,
                                         headers={"X-Request-Id": request_id})
        try:
            resp = await self._client.send(req, stream=stream)
        except _TRANSPORT_RETRY as exc:
            up.down_until = self._clock() + self.eject_s
            raise _Retry(f"{up.url}: {type(exc).__name__}") from exc
        if resp.status_code < 400:
            return resp
        await resp.aread()
        await resp.aclose()
        if resp.status_code in _STATUS_RETRY:
            up.down_until = self._clock() + self.eject_s
            raise _Retry(f"{up.url}: HTTP {resp.status_code}")
        message = _error_message(resp)
        if resp.status_code == 400:
            raise BadRequest(f"the engine refused the request: {message}", param="question")
        raise EngineUnavailable(f"the engine answered HTTP {resp.status_code}: {message}")

    def _body(self, messages: list[ChatMessage], params: GenParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id, "messages": [{"role": m.role, "content": m.content}
                                                 for m in messages],
            "n": params.n, "temperature": params.temperature, "top_p": 1.0,
            "max_tokens": params.max_tokens, "return_token_ids": True,
        }
        if params.top_logprobs is not None:
            body.update(logprobs=True, top_logprobs=params.top_logprobs)
        return body

    # -- EngineClient ----------------------------------------------------------------------------
    async def generate(self, messages: list[ChatMessage], params: GenParams,
                       request_id: str) -> Generation:
        resp = await self._send("/v1/chat/completions", self._body(messages, params), request_id)
        data = resp.json()
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        if not choices:
            raise EngineUnavailable("the engine returned no completion")
        comps = tuple(_completion(c, params.top_logprobs) for c in choices)
        usage = data.get("usage") or {}
        return Generation(completions=comps, prompt_tokens=int(usage.get("prompt_tokens", 0)),
                          completion_tokens=sum(c.n_tokens for c in comps))

    async def stream(self, messages: list[ChatMessage], params: GenParams,
                     request_id: str) -> AsyncGenerator[TextDelta, None]:
        """Server-sent events; the HTTP response is closed in ``finally`` (early exit aborts)."""
        if params.n != 1:
            raise ValueError("stream() generates one completion")
        body = {**self._body(messages, params), "stream": True,
                "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
        resp = await self._send("/v1/chat/completions", body, request_id, stream=True)
        text: list[str] = []
        tokens: list[TokenInfo] = []
        n_tokens = prompt = 0
        try:
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                chunk = json.loads(payload)
                prompt = int((chunk.get("usage") or {}).get("prompt_tokens", prompt))
                for c in chunk.get("choices") or []:
                    piece = (c.get("delta") or {}).get("content") or ""
                    toks = _tokens(c.get("logprobs"), params.top_logprobs)
                    text.append(piece)
                    tokens.extend(toks)
                    n_tokens += len(c.get("token_ids") or []) or len(toks)
                    final = None
                    if c.get("finish_reason"):
                        final = Completion("".join(text), tuple(tokens), n_tokens,
                                           c["finish_reason"])
                    yield TextDelta(piece, toks, final, prompt)
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"the engine stream broke off ({type(exc).__name__})"
                                    ) from exc
        finally:
            await resp.aclose()

    async def count_prompt_tokens(self, messages: list[ChatMessage]) -> int:
        key = tuple((m.role, m.content) for m in messages)
        if key in self._counts:
            self._counts.move_to_end(key)
            return self._counts[key]
        body = {"model": self.model_id, "add_generation_prompt": True,
                "messages": [{"role": r, "content": c} for r, c in key]}
        resp = await self._send("/tokenize", body, "tokenize")
        n = int(resp.json()["count"])
        self._counts[key] = n
        if len(self._counts) > 1024:
            self._counts.popitem(last=False)
        return n

    async def health(self) -> bool:
        """Probe every URL's ``/health`` at once; True when one serves. Never raises."""
        results = await asyncio.gather(*(self._probe(up) for up in self.upstreams))
        return any(results)

    async def _probe(self, up: Upstream) -> bool:
        try:
            r = await self._client.get(up.url + "/health", timeout=self.connect_timeout_s)
            alive = r.status_code == 200
        except httpx.HTTPError:
            alive = False
        up.down_until = 0.0 if alive else self._clock() + self.eject_s
        return alive

    async def load(self) -> EngineLoad | None:
        """The servers' own load (``load.parse_load`` of each one's ``/metrics``), summed:
        they may serve other clients too. None when none answers; never raises."""
        return combine(list(await asyncio.gather(*(self._load(up) for up in self.upstreams))))

    async def _load(self, up: Upstream) -> EngineLoad | None:
        try:
            r = await self._client.get(up.url + "/metrics", timeout=self.connect_timeout_s)
        except httpx.HTTPError:
            return None
        return parse_load(r.text) if r.status_code == 200 else None

    async def aclose(self) -> None:
        await self._client.aclose()


def _tokens(logprobs: dict[str, Any] | None, k: int | None) -> tuple[TokenInfo, ...]:
    if k is None or not logprobs:
        return ()
    out = []
    for t in logprobs.get("content") or []:
        top = (t.get("top_logprobs") or [])[:k]
        out.append(TokenInfo(token=t.get("token", ""), logprob=float(t["logprob"]),
                             top_logprobs=tuple(float(x["logprob"]) for x in top),
                             top_tokens=tuple(x.get("token", "") for x in top)))
    return tuple(out)


def _completion(choice: dict[str, Any], k: int | None) -> Completion:
    tokens = _tokens(choice.get("logprobs"), k)
    ids = choice.get("token_ids")
    n = len(ids) if ids is not None else len(tokens)
    text = (choice.get("message") or {}).get("content") or ""
    return Completion(text=text, tokens=tokens, n_tokens=n,
                      finish_reason=choice.get("finish_reason") or "stop")


def _error_message(resp: httpx.Response) -> str:
    try:
        err = resp.json()
        if isinstance(err, dict):
            inner = err.get("error", err)
            msg = inner.get("message") if isinstance(inner, dict) else inner
            return str(msg or err)[:300]
    except ValueError:
        pass
    return resp.text[:300] or resp.reason_phrase
