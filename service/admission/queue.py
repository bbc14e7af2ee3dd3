"""A bounded wait queue in front of the engine, in the engine's own units: sequences.

Every engine call takes the sequences it is (a greedy pass 1, a sampling stage its ``n``;
more than ``capacity`` takes the whole engine) and gives them back when it ends. A call
starts at once while the engine has room; otherwise it waits, in priority order: a request
that already paid for its greedy pass and now needs samples (an *escalation*) goes before
every new arrival, so under load a question is not abandoned half-way at the expensive
stage. Within a priority, first come first served, and the head of the queue is never
overtaken by a smaller call behind it (a ten-sample stage is not starved by greedy passes).

A new request is *admitted* (``admit``) before any of its work: refused with 429 only when
``queue_max`` requests already wait to start beyond the room left, or when it would have
to wait and could not then finish within its own budget (expected wait + the engine
passes its stages may need).
The expected wait is the work ahead of it over the measured drain rate (``Drain``);
``Retry-After`` is the time the queue needs to drain. Nothing here reads a clock or does
I/O: the caller times each call (``release``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from service.errors import CandorError, Overloaded

ESCALATION, NEW = 0, 1  # priorities: lower goes first
# A pass is budgeted at twice one sequence's measured time: it runs for one, and a later
# pass (an escalation, first in line) may wait up to about one for a full batch to free room.
SLACK = 2.0


@dataclass
class Drain:
    """The engine's measured drain rate in sequences per second, by Little's law: the
    sequences it runs at once (time-averaged at each completion) over how long one takes.
    Idle time does not dilute it; ``None`` until something has finished."""

    window: int = 20  # completions in the moving averages
    seq_s: float | None = None  # how long a sequence runs
    running: float | None = None  # sequences running at once

    def done(self, seconds: float, running: int) -> None:
        self.seq_s = _ema(self.seq_s, max(seconds, 1e-3), self.window)
        self.running = _ema(self.running, float(max(running, 1)), self.window)

    @property
    def rate(self) -> float | None:
        if self.seq_s is None or self.running is None:
            return None
        return self.running / self.seq_s


def _ema(avg: float | None, x: float, window: int) -> float:
    return x if avg is None else avg + (x - avg) * 2.0 / (window + 1)


@dataclass(order=True)
class _Waiter:
    priority: int
    order: int
    seqs: int = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


@dataclass
class EngineQueue:
    capacity: int  # sequences the engine runs at once for Candor
    queue_max: int  # new requests waiting to start, at most
    foreign: Callable[[], int] = lambda: 0  # sequences others run on a shared engine
    drain: Drain = field(default_factory=Drain)
    running: int = 0  # sequences running now
    pending: int = 0  # admitted requests whose first call has not started
    closed: Callable[[], CandorError] | None = None  # draining: new and queued get this
    _heap: list[_Waiter] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    # -- admission of a new request ------------------------------------------------------------
    def admit(self, budget_s: float, passes: int = 1) -> None:
        """Count a new request in, or refuse it (``Overloaded``: 429 + Retry-After; after
        ``close``, its refusal). ``passes``: the engine calls its stages may need, each
        timed as ``SLACK`` x one sequence's time."""
        if self.closed is not None:
            raise self.closed()
        waiting = self.pending - max(0, self.free())  # those beyond the room left
        if waiting >= self.queue_max:
            raise Overloaded(f"{waiting} requests wait for the engine (queue_max "
                             f"{self.queue_max})", retry_after_s=self.retry_after())
        wait = self.expected_wait()
        busy = self.running > 0 or bool(self._heap)  # idle: a budget is the client's own
        if busy and wait + self.need_s(passes) > budget_s:
            raise Overloaded(f"the expected wait for the engine ({wait:.1f} s) exceeds the "
                             f"request's budget ({budget_s:.1f} s)",
                             retry_after_s=self.retry_after())
        self.pending += 1

    def need_s(self, passes: int) -> float:
        """Seconds a request of ``passes`` engine calls needs once its first call starts:
        each at ``SLACK`` x one sequence's time, and for an escalating one the escalations
        already waiting, which go before its own."""
        rate = self.drain.rate
        backlog = self._escalating() / rate if passes > 1 and rate else 0.0
        return SLACK * passes * (self.drain.seq_s or 0.0) + backlog

    def _escalating(self) -> int:
        return sum(w.seqs for w in self._heap if w.priority == ESCALATION)

    def started(self) -> None:
        """The request's first call started, or the request ended before it did."""
        self.pending -= 1

    def expected_wait(self) -> float:
        """Seconds a new arrival would wait to start: the work ahead of it that does not
        fit in the room left, over the drain rate (0 while that is unknown)."""
        ahead = self.pending + self._escalating()
        excess = ahead + 1 - self.free()
        rate = self.drain.rate
        return 0.0 if excess <= 0 or rate is None else excess / rate

    def retry_after(self) -> int:
        """Whole seconds until what is queued and running now has drained (at least 1)."""
        rate = self.drain.rate
        queued = self.pending + self._escalating()
        if rate is None:
            return 1
        return max(1, math.ceil((queued + self.running) / rate))

    def free(self) -> int:
        return self.capacity - self.running - max(0, self.foreign())

    def _fits(self, seqs: int) -> bool:
        return self.running == 0 or self.free() >= seqs  # alone, a call of ours always fits

    def poke(self) -> None:
        """Start what fits now (after the foreign load went down)."""
        self._wake()

    @property
    def waiting(self) -> int:
        return sum(w.seqs for w in self._heap)

    # -- sequences for one engine call ---------------------------------------------------------
    async def acquire(self, seqs: int, priority: int,
                      latest: Callable[[], float] | None = None) -> int:
        """Wait for room for ``seqs`` sequences; returns what was taken (release it).
        ``latest()``: the latest start worth waiting for (the loop's clock, re-read as the
        drain estimate improves); past it, ``TimeoutError``. A wait that is cancelled or
        times out leaves the queue as if it had never been joined."""
        take = max(1, min(seqs, self.capacity))
        if not self._heap and self._fits(take):
            self.running += take
            return take
        loop = asyncio.get_running_loop()
        w = _Waiter(priority, next(self._order), take, loop.create_future())
        heapq.heappush(self._heap, w)
        try:
            while not w.future.done():
                left = None if latest is None else latest() - loop.time()
                if left is not None and left <= 0:
                    raise TimeoutError("no room before the latest start")
                await asyncio.wait([w.future], timeout=None if left is None else min(left, 0.25))
            w.future.result()  # refused by ``close``: raises
        except BaseException:
            self._leave(w)
            raise
        return take

    def close(self, refusal: Callable[[], CandorError]) -> None:
        """Admit nothing more, and refuse (``refusal()``) every request still waiting for
        its first call (a drain); escalations of started requests go on."""
        self.closed = refusal
        for w in [w for w in self._heap if w.priority == NEW and not w.future.done()]:
            w.future.set_exception(refusal())

    def _leave(self, w: _Waiter) -> None:
        granted = w.future.done() and not w.future.cancelled() and w.future.exception() is None
        if granted:  # granted as it gave up
            self.release(w.seqs)
            return
        w.future.cancel()
        if w in self._heap:
            self._heap.remove(w)
            heapq.heapify(self._heap)
            self._wake()

    def release(self, seqs: int, seconds: float | None = None) -> None:
        """Give ``seqs`` back; ``seconds``: how long the call ran (a drain sample)."""
        if seconds is not None:
            self.drain.done(seconds, self.running)
        self.running -= seqs
        self._wake()

    def _wake(self) -> None:
        while self._heap and self._fits(self._heap[0].seqs):
            w = heapq.heappop(self._heap)
            if w.future.done():  # cancelled, its waiter not resumed yet: it leaves
                continue
            self.running += w.seqs
            w.future.set_result(None)
