"""Server-sent events for ``/v1/chat/completions`` with ``stream=true`` (both stream modes).

``guarded`` (default): the cascade decides first; then the text (or the abstention
message) and a final chunk carrying ``uncertainty``. Nothing unvetted is ever sent.

``live``: the greedy pass is streamed as vLLM generates it (``EngineClient.stream``),
then the cascade continues from the final completion and the last chunk carries the
verdict: ``finish_reason``, ``usage``, ``uncertainty`` and, when the cascade abstains,
the abstention message as its content. An error before the first token is an ordinary
HTTP error; one after it is an ``{"error": ...}`` event (which the OpenAI SDK raises as
``APIError``). A client that goes away cancels the run, and with it the engine request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from service.api.errors import error_body
from service.api.headers import answer_headers, live_headers
from service.cascade.runner import Answered
from service.engine.protocol import TextDelta
from service.errors import CandorError
from service.openai_schemas import (
    ChatCompletionResponse,
    chunk,
    final_chunk,
    to_chat_response,
    to_stream_chunks,
)
from service.schemas import AnswerRequest
from service.state import CandorState

log = logging.getLogger(__name__)
DONE = "data: [DONE]\n\n"


def sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"


class ClosingStreamingResponse(StreamingResponse):
    """Closes its body iterator however the response ends (finished, failed, cancelled by
    a disconnect), so the generator's ``finally`` runs now, not when it is collected."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def guarded(chat: ChatCompletionResponse) -> Iterator[str]:
    for c in to_stream_chunks(chat):
        yield sse(c)
    yield DONE


class LiveRun:
    """One cascade run whose greedy deltas are queued as the engine produces them."""

    def __init__(self, state: CandorState, req: AnswerRequest, endpoint: str) -> None:
        self.rid: str | None = None
        self._queue: asyncio.Queue[TextDelta | None] = asyncio.Queue()
        self._started = asyncio.Event()
        self.task = asyncio.create_task(state.answer(req, endpoint, on_delta=self._push))
        self.task.add_done_callback(self._finished)

    async def _push(self, rid: str, delta: TextDelta) -> None:
        self.rid = rid
        self._queue.put_nowait(delta)
        self._started.set()

    def _finished(self, _task: asyncio.Task[Answered]) -> None:
        self._queue.put_nowait(None)
        self._started.set()

    async def start(self) -> None:
        """Wait for the first delta. A failure before it (bad input, overload, not ready)
        is raised here, so it is answered with its HTTP status like any other error."""
        ok = False
        try:
            await self._started.wait()
            ok = True
        finally:
            if not ok:  # cancelled while waiting: the client is gone
                self.task.cancel()
        if self.rid is None and self.task.done():
            self.task.result()

    async def events(self) -> AsyncIterator[TextDelta | Answered]:
        """The deltas, then the response; cancels the run if the consumer stops early."""
        try:
            while (item := await self._queue.get()) is not None:
                yield item
            yield self.task.result()
        finally:
            if not self.task.done():
                self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task  # cancelled, or a failure the consumer never read


async def live(run: LiveRun, model: str, abstain_message: str) -> AsyncIterator[str]:
    """The SSE body of a live stream: role chunk, one chunk per delta, the verdict."""
    rid, created = run.rid or "", int(time.time())
    yield sse(chunk(rid, created, model, {"role": "assistant", "content": ""}))
    sent = False
    try:
        async for item in run.events():
            if isinstance(item, TextDelta):
                if item.text:
                    sent = True
                    yield sse(chunk(rid, created, model, {"content": item.text}))
                continue
            chat = to_chat_response(item.response, abstain_message, item.plan.max_tokens)
            yield sse(final_chunk(chat, created, live_text_sent=sent))
    except CandorError as exc:  # after the first token: the status line is already sent
        yield sse(error_body(exc.status, exc.type, exc.message, exc.param))
    except Exception:  # noqa: BLE001 - reported in the stream and the log, never a traceback
        log.exception("live stream %s failed", rid)
        yield sse(error_body(500, "internal_error",
                             "internal server error; see the server log"))
    yield DONE


async def chat_stream(state: CandorState, req: AnswerRequest, mode: str,
                      abstain_message: str,
                      endpoint: str = "/v1/chat/completions") -> StreamingResponse:
    """The streaming response for either mode (errors before any text are raised)."""
    if mode == "guarded":
        out = await state.answer(req, endpoint=endpoint)
        chat = to_chat_response(out.response, abstain_message, out.plan.max_tokens)
        return ClosingStreamingResponse(guarded(chat), media_type="text/event-stream",
                                        headers=answer_headers(out.response))
    run = LiveRun(state, req, endpoint)
    await run.start()
    return ClosingStreamingResponse(live(run, state.settings.model_name, abstain_message),
                                    media_type="text/event-stream",
                                    headers=live_headers(run.rid))
