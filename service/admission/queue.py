"""A bounded wait queue in front of the engine, in the engine's own units: sequences.

Every engine call takes the sequences it is (a greedy pass 1, a sampling stage its ``n``)
from ``limit`` (``CANDOR_ENGINE_SEQUENCES``, or twice the engine's measured saturation
point once seen: beyond it more sequences only lengthen every pass; a call larger than the
limit takes the whole engine) and gives them back when it ends. A call
starts at once while the engine has room; otherwise it waits, in priority order: a request
that already paid for its greedy pass and now needs samples (an *escalation*) goes before
every new arrival, so under load a question is not abandoned half-way at the expensive
stage. Within a priority, first come first served, and the head of the queue is never
overtaken by a smaller call behind it (a ten-sample stage is not starved by greedy passes).

**Deadlines.** A new request is admitted (``admit``) unless ``queue_max`` requests already
wait beyond the room left, or the engine is busy and its expected wait plus its passes'
time (``need_s``: ``Speed.pass_s`` of each pass its stages may make, x ``SLACK``) exceeds
its budget: 429 + ``Retry-After`` (the queue's drain time). A call also never *starts* when
it could not finish in time (``acquire``'s ``doomed``, checked while it waits and when its
turn comes): the caller turns that into a 429 for a request's first call (nothing of it
ran) and into the stage's deadline for an escalation, instead of spending sequences that
the deadline would cancel. And no call starts that would slow a started one (its
``Guard``) past its deadline: it waits instead, and sheds itself if its own time runs out.
The clock is injectable; nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from service.admission.speed import ESCALATION, NEW, Pass, Speed
from service.errors import CandorError, Overloaded

# A request is budgeted at 1.5x its passes' predicted time: the batch it runs in may grow
# after it started, and the prediction is an average.
SLACK = 1.5
# Sequences run at once, past the engine's saturation point (``Speed.knee``): twice the
# knee keeps it saturated; more would only lengthen every pass (a CPU saturates early).
KNEE_HEADROOM = 2.0


@dataclass(eq=False)
class Guard:
    """A started call that must finish by ``deadline``: about ``tokens`` per sequence, at
    ``share`` tokens/s when it started. No call starts that would make it late."""

    tokens: float
    deadline: float  # ``clock`` time
    started: float = 0.0
    share: float = 0.0


@dataclass(order=True)
class _Waiter:
    priority: int
    order: int
    seqs: int = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


@dataclass
class EngineQueue:
    capacity: int  # sequences the engine runs at once for Candor, at most
    queue_max: int  # new requests waiting to start, at most
    floor: int = 1  # the limit never goes below this (one escalation and a greedy pass)
    foreign: Callable[[], int] = lambda: 0  # sequences others run on a shared engine
    speed: Speed = field(default_factory=Speed)
    running: int = 0  # sequences running now
    pending: int = 0  # admitted requests whose first call has not started
    closed: Callable[[], CandorError] | None = None  # draining: new and queued get this
    clock: Callable[[], float] = time.monotonic  # tickets' deadlines are on it too
    _guards: list[Guard] = field(default_factory=list)
    _heap: list[_Waiter] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    # -- admission of a new request ------------------------------------------------------------
    def admit(self, budget_s: float, passes: Sequence[Pass]) -> None:
        """Count a new request in, or refuse it (``Overloaded``: 429 + Retry-After; after
        ``close``, its refusal). ``passes``: the engine calls its stages may make."""
        if self.closed is not None:
            raise self.closed()
        waiting = self.pending - max(0, self.free())  # those beyond the room left
        if waiting >= self.queue_max:
            raise Overloaded(f"{waiting} requests wait for the engine (queue_max "
                             f"{self.queue_max})", retry_after_s=self.retry_after())
        busy = self.running > 0 or bool(self._heap)  # idle: a budget is the client's own
        wait, need = self.expected_wait(), self.need_s(passes)
        if busy and wait + need > budget_s:
            raise Overloaded(f"the engine is busy: {wait:.1f} s of expected wait and "
                             f"{need:.1f} s of work do not fit the request's budget "
                             f"({budget_s:.1f} s)", retry_after_s=self.retry_after())
        self.pending += 1

    def started(self) -> None:
        """The request's first call started, or the request ended before it did."""
        self.pending -= 1

    def need_s(self, passes: Sequence[Pass]) -> float:
        """Seconds ``passes`` need once started in the engine as busy as it is now, with
        ``SLACK``. An escalation among them also waits for the escalations queued before
        it and, in a full engine, about one greedy pass for room to free up."""
        others = self.limit if self._heap else self.running  # a queue: a full batch
        work = SLACK * sum(self.speed.pass_s(p, others) for p in passes)
        if not any(p.kind == ESCALATION for p in passes):
            return work
        room = 0.0 if self.free() > 0 else self.speed.pass_s(Pass(1, 1 << 30), others)
        return work + room + self.speed.drain_s(self._escalating(), self.limit, ESCALATION)

    def expected_wait(self) -> float:
        """Seconds a new arrival would wait to start: none while the work ahead of it fits
        in the room left, else that work at the engine's total rate."""
        if self.pending + self._escalating() + 1 <= self.free():
            return 0.0
        return (self.speed.drain_s(self.pending, self.limit, NEW)
                + self.speed.drain_s(self._escalating(), self.limit, ESCALATION))

    def retry_after(self) -> int:
        """Whole seconds until what is queued and running now has drained (at least 1)."""
        queued = self.pending + self._escalating() + self.running
        return max(1, math.ceil(self.speed.drain_s(queued, self.limit)))

    @property
    def limit(self) -> int:
        """Sequences run at once: ``capacity``, or fewer once the engine was seen to
        saturate (``KNEE_HEADROOM`` x its knee, never below ``floor``)."""
        knee = self.speed.knee
        if knee is None:
            return self.capacity
        return max(min(self.floor, self.capacity),
                   min(self.capacity, math.ceil(KNEE_HEADROOM * knee)))

    def free(self) -> int:
        return self.limit - self.running - max(0, self.foreign())

    def _fits(self, seqs: int) -> bool:
        if self.running == 0:
            return True  # alone, a call of ours always fits
        return self.free() >= seqs and not self._hurts(seqs)

    def _hurts(self, seqs: int) -> bool:
        """Whether ``seqs`` more sequences would slow a started call that would finish by
        its deadline so much that it would not."""
        before, after = self.speed.share(self.running), self.speed.share(self.running + seqs)
        if not self._guards or after >= before or after <= 0:
            return False
        now = self.clock()
        for g in self._guards:
            left = max(0.0, g.tokens - (now - g.started) * g.share)
            if now + left / before <= g.deadline < now + left / after:
                return True
        return False

    def _escalating(self) -> int:
        return sum(w.seqs for w in self._heap if w.priority == ESCALATION)

    @property
    def waiting(self) -> int:
        return sum(w.seqs for w in self._heap)

    def poke(self) -> None:
        """Start what fits now (after the foreign load went down)."""
        self._wake()

    # -- sequences for one engine call ---------------------------------------------------------
    async def acquire(self, seqs: int, priority: int, doomed: Callable[[], bool] | None = None,
                      guard: Guard | None = None) -> int:
        """Wait for room for ``seqs`` sequences; returns what was taken (release it).
        ``doomed()``: True when the call could no longer finish in time; checked while it
        waits and when its turn comes, then ``TimeoutError``. ``guard``: once started, no
        other call starts that would make it miss its deadline (release it with the call).
        A wait that is cancelled, doomed or refused (``close``) leaves the queue as if it
        had never been joined."""
        take = max(1, min(seqs, self.limit))
        if not self._heap and self._fits(take):
            if doomed is not None and doomed():
                raise TimeoutError("it could not finish in time")
            self.running += take
            self._guard(guard)
            return take
        w = _Waiter(priority, next(self._order), take,
                    asyncio.get_running_loop().create_future())
        heapq.heappush(self._heap, w)
        try:
            while not w.future.done():
                if doomed is not None and doomed():
                    raise TimeoutError("it could no longer finish in time")
                await asyncio.wait([w.future], timeout=None if doomed is None else 0.25)
                self._wake()  # a guarded call may have become late on its own
            w.future.result()  # refused by ``close``: raises
            if doomed is not None and doomed():
                raise TimeoutError("its turn came too late")
        except BaseException:
            self._leave(w)
            raise
        self._guard(guard)
        return take

    def _guard(self, guard: Guard | None) -> None:
        if guard is not None:
            guard.started, guard.share = self.clock(), self.speed.share(self.running)
            self._guards.append(guard)

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

    def release(self, seqs: int, guard: Guard | None = None) -> None:
        self.running -= seqs
        if guard is not None and guard in self._guards:
            self._guards.remove(guard)
        self._wake()

    def _wake(self) -> None:
        while self._heap and self._fits(self._heap[0].seqs):
            w = heapq.heappop(self._heap)
            if w.future.done():  # cancelled, its waiter not resumed yet: it leaves
                continue
            self.running += w.seqs
            w.future.set_result(None)
