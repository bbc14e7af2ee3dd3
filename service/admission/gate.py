"""The engine behind the queue: every call of an admitted request takes its sequences.

``Ticket`` is one admitted request (``Admission.answer`` sets it in a context variable for
the cascade's task and the tasks it starts). ``GatedEngine`` wraps the engine: its first
call for a ticket waits as a new arrival, every later call (samples, P(True)) as an
escalation, ahead of new arrivals. A first call that cannot start in time to run the
request's engine passes within its budget is refused with 429 + Retry-After, as at
admission (it never started, so a retry is safe); a call outside any ticket (offline
tools) waits as new.

An engine that reports its load (``ReportsLoad``: a remote server shared with other
clients) is polled every ``load_interval_s``; the sequences it runs beyond Candor's own
count as room taken (``EngineQueue.foreign``), and a KV cache above ``KV_FULL`` as no room
beyond what already runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from service.admission.queue import ESCALATION, NEW, EngineQueue
from service.engine.protocol import (
    ChatMessage,
    EngineClient,
    Generation,
    GenParams,
    ReportsLoad,
    TextDelta,
)
from service.errors import Overloaded
from service.vocab import STAGES

log = logging.getLogger(__name__)
KV_FULL = 0.95


@dataclass
class Ticket:
    deadline: float  # the event loop's clock
    calls: int = 0  # engine calls started or waiting
    pending: bool = True  # counted in EngineQueue.pending until its first call starts
    admitted_at: float = 0.0
    passes: int = 1  # engine calls its stages may need


TICKET: ContextVar[Ticket | None] = ContextVar("candor_ticket", default=None)


class GatedEngine:
    """An ``EngineClient`` whose calls take their sequences from ``queue``."""

    def __init__(self, inner: EngineClient, queue: EngineQueue, load_interval_s: float = 1.0,
                 on_wait: Callable[[float], None] | None = None) -> None:
        self.inner, self.queue, self.load_interval_s = inner, queue, load_interval_s
        self.model_id = inner.model_id
        self.chat_template_hash = inner.chat_template_hash  # known once the engine is up
        self.on_wait = on_wait  # seconds a request waited for its first call
        self._foreign = 0
        self._poller: asyncio.Task[None] | None = None
        if isinstance(inner, ReportsLoad):
            queue.foreign = lambda: self._foreign

    async def generate(self, messages: list[ChatMessage], params: GenParams,
                       request_id: str) -> Generation:
        async with self._sequences(params.n):
            return await self.inner.generate(messages, params, request_id)

    async def stream(self, messages: list[ChatMessage], params: GenParams,
                     request_id: str) -> AsyncGenerator[TextDelta, None]:
        async with self._sequences(params.n), \
                aclosing(self.inner.stream(messages, params, request_id)) as deltas:
            async for delta in deltas:
                yield delta

    async def count_prompt_tokens(self, messages: list[ChatMessage]) -> int:
        return await self.inner.count_prompt_tokens(messages)

    async def health(self) -> bool:
        return await self.inner.health()

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self.inner.aclose()

    @asynccontextmanager
    async def _sequences(self, n: int) -> AsyncIterator[None]:
        self._watch_load()
        ticket = TICKET.get()
        first = ticket is None or ticket.calls == 0
        if ticket is not None:
            ticket.calls += 1
        if ticket is not None and first:
            take = await self._first(ticket, n)
        else:
            take = await self.queue.acquire(n, NEW if first else ESCALATION)
        t0, ok = time.monotonic(), False
        try:
            yield
            ok = True
        finally:  # only a finished call says how fast the engine drains
            self.queue.release(take, time.monotonic() - t0 if ok else None)

    async def _first(self, ticket: Ticket, n: int) -> int:
        """The request's first call: it waits as a new arrival, until the latest moment it
        could still finish in its budget; then 429 (it never started: retrying is safe)."""
        loop = asyncio.get_running_loop()
        def latest() -> float:  # the drain estimate may improve while it waits
            return ticket.deadline - max(0.05, self.queue.need_s(ticket.passes))

        try:
            take = await self.queue.acquire(n, NEW, latest)
        except TimeoutError as exc:
            raise Overloaded(
                f"the engine could not start this request within its budget (queued "
                f"{loop.time() - ticket.admitted_at:.1f} s)",
                retry_after_s=self.queue.retry_after()) from exc
        finally:
            ticket.pending = False
            self.queue.started()
        if self.on_wait is not None:
            self.on_wait(loop.time() - ticket.admitted_at)
        return take

    # -- the load of a shared engine ---------------------------------------------------------
    def _watch_load(self) -> None:
        if self._poller is None and isinstance(self.inner, ReportsLoad):
            self._poller = asyncio.get_running_loop().create_task(self._poll(self.inner))

    async def _poll(self, engine: ReportsLoad) -> None:
        while True:
            load = await engine.load()
            if load is not None:
                total = load.running + load.waiting
                full = load.kv_cache_usage >= KV_FULL
                self._foreign = self.queue.capacity if full else max(
                    0, total - self.queue.running)
                self.queue.poke()
            await asyncio.sleep(self.load_interval_s)


@asynccontextmanager
async def admitted(queue: EngineQueue, budget_s: float,
                   max_stage: int = 0) -> AsyncIterator[Ticket]:
    """Admit one request that may run up to ``max_stage`` (``EngineQueue.admit``: 429 when
    the queue is full, or when after the expected wait its stages' engine passes would not
    fit in its budget) and hold its ticket while the cascade runs."""
    passes = sum(spec.engine_pass for spec in STAGES[: max_stage + 1])
    queue.admit(budget_s, passes)
    now = asyncio.get_running_loop().time()
    ticket = Ticket(deadline=now + budget_s, admitted_at=now, passes=passes)
    token = TICKET.set(ticket)
    try:
        yield ticket
    finally:
        TICKET.reset(token)
        if ticket.pending:  # it ended (bad input, an error) before its first call
            ticket.pending = False
            queue.started()
