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
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from service.admission.queue import EngineQueue, Guard
from service.admission.speed import ESCALATION, NEW, Pass
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
    deadline: float  # the queue's clock (time.monotonic)
    plan: list[Pass]  # the engine calls its stages may still make
    calls: int = 0  # engine calls started or waiting
    pending: bool = True  # counted in EngineQueue.pending until its first call starts
    admitted_at: float = 0.0


TICKET: ContextVar[Ticket | None] = ContextVar("candor_ticket", default=None)


def planned_passes(max_stage: int, max_tokens: int, samples_n: int,
                   sample_max_tokens: int) -> list[Pass]:
    """The engine calls a request that may run to ``max_stage`` can make: the greedy pass,
    the samples, the 1-token P(True) pass (``StageSpec.engine_pass``)."""
    samples = Pass(samples_n, min(max_tokens, sample_max_tokens), ESCALATION)
    return [Pass(1, max_tokens, NEW) if spec.index == 0 else samples if spec.sampling
            else Pass(1, 1, ESCALATION)
            for spec in STAGES[: max_stage + 1] if spec.engine_pass]


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
        async with self._sequences(params) as tokens:
            gen = await self.inner.generate(messages, params, request_id)
            tokens.append(gen.completion_tokens / max(1, len(gen.completions)))
            return gen

    async def stream(self, messages: list[ChatMessage], params: GenParams,
                     request_id: str) -> AsyncGenerator[TextDelta, None]:
        async with self._sequences(params) as tokens, \
                aclosing(self.inner.stream(messages, params, request_id)) as deltas:
            async for delta in deltas:
                if delta.final is not None:
                    tokens.append(float(delta.final.n_tokens))
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
    async def _sequences(self, params: GenParams) -> AsyncIterator[list[float]]:
        """Room for the call's sequences; yields a list for the tokens per sequence it
        generated, which (with its duration) is a sample of the engine's speed."""
        self._watch_load()
        ticket = TICKET.get()
        first = ticket is None or ticket.calls == 0
        kind = NEW if first else ESCALATION
        call = Pass(params.n, params.max_tokens, kind)
        if ticket is not None:
            ticket.calls += 1
            ticket.plan = ticket.plan[1:]  # this call stands for its planned pass
        guard = None if ticket is None else Guard(self.queue.speed.tokens(call),
                                                    ticket.deadline)
        if ticket is not None and first:
            take = await self._first(ticket, call, guard)
        else:
            # it already paid for its greedy pass, and waits first in line: it starts if
            # on average its own pass still finishes in time
            doomed = None if ticket is None else self._doomed(
                ticket, lambda: self.queue.speed.pass_s(call, self.queue.running))
            take = await self.queue.acquire(params.n, kind, doomed, guard)
        tokens: list[float] = []
        clock = self.queue.clock
        t0, r0 = clock(), self.queue.running
        try:
            yield tokens
        finally:
            if tokens:  # a finished call: how fast the engine decodes
                running = (r0 + self.queue.running) / 2
                self.queue.speed.done(kind, tokens[0], clock() - t0, running)
            self.queue.release(take, guard)

    def _doomed(self, ticket: Ticket, need: Callable[[], float]) -> Callable[[], bool]:
        """Whether what ``need()`` seconds of work could no longer finish by the ticket's
        deadline; never on an idle engine (there, a budget is the client's own business)."""
        clock = self.queue.clock
        return lambda: self.queue.running > 0 and clock() + need() > ticket.deadline

    async def _first(self, ticket: Ticket, call: Pass, guard: Guard | None) -> int:
        """The request's first call: it waits as a new arrival, and starts only while the
        request's passes can still finish in its budget; else 429 (nothing of it ran, so
        a retry is safe)."""
        clock = self.queue.clock
        try:
            passes = [call, *ticket.plan]
            take = await self.queue.acquire(
                call.seqs, NEW, self._doomed(ticket, lambda: self.queue.need_s(passes)), guard)
        except TimeoutError as exc:
            raise Overloaded(
                f"the engine could not start this request in time to finish it within its "
                f"budget (queued {clock() - ticket.admitted_at:.1f} s)",
                retry_after_s=self.queue.retry_after()) from exc
        finally:
            ticket.pending = False
            self.queue.started()
        if self.on_wait is not None:
            self.on_wait(clock() - ticket.admitted_at)
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
                self._foreign = self.queue.limit if full else max(
                    0, total - self.queue.running)
                self.queue.poke()
            await asyncio.sleep(self.load_interval_s)


@asynccontextmanager
async def admitted(queue: EngineQueue, budget_s: float,
                   plan: list[Pass]) -> AsyncIterator[Ticket]:
    """Admit one request whose stages may make the engine calls ``plan``
    (``EngineQueue.admit``: 429 when the queue is full, or when the engine is busy and the
    wait plus the plan's time would not fit its budget) and hold its ticket while the
    cascade runs."""
    queue.admit(budget_s, plan)
    now = queue.clock()
    ticket = Ticket(deadline=now + budget_s, plan=list(plan), admitted_at=now)
    token = TICKET.set(ticket)
    try:
        yield ticket
    finally:
        TICKET.reset(token)
        if ticket.pending:  # it ended (bad input, an error) before its first call
            ticket.pending = False
            queue.started()
