"""Admission that fits the engine: an adaptive concurrency limit driven by measured latency.

``GradientLimit.update(rtt, inflight, dropped)`` is pure arithmetic (no clock, no I/O), in
the spirit of Netflix concurrency-limits' gradient limits and Envoy's adaptive concurrency:
a short exponential average of request latency is compared with a no-load baseline (the
lowest latency seen, drifting slowly upward so it follows a changed workload). While the
short average stays within ``tolerance`` x the baseline the limit grows by a small queue
allowance; as queueing pushes latency up it shrinks by the ratio (at most by half per
step); ``smoothing`` damps each step. A dropped request (engine unavailable, deadline) backs
off multiplicatively, as AIMD does. Failures that say nothing about capacity (bad input, a
client that went away) are ignored, not sampled. Start low (``CANDOR_ADMISSION_INITIAL_LIMIT``,
default 4): the limit climbs while latency stays flat, so the baseline is learnt unloaded.

``Limiter`` admits a request while ``inflight < min(limit, ceiling)``; ``CANDOR_MAX_INFLIGHT``
is the hard ceiling, and ``CANDOR_ADMISSION=fixed`` keeps the old fixed count. Times come
from ``time.monotonic`` (injectable). Labels (``POST /v1/feedback``) have a fixed pool of
their own, ``CANDOR_MAX_INFLIGHT_FEEDBACK``: they load the decision log writer, not the
engine, and a flood of them must not queue without bound in front of it and the event loop.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from service.config import Settings
from service.errors import DeadlineExceeded, EngineUnavailable, Overloaded
from service.metrics import Metrics


@dataclass
class GradientLimit:
    limit: float = 4.0
    min_limit: int = 1
    max_limit: int = 32
    tolerance: float = 1.5  # latency may reach 1.5x the baseline before the limit shrinks
    smoothing: float = 0.2
    short_window: int = 10
    drift_window: int = 500  # the baseline creeps up by 1/drift_window of the gap per sample
    backoff: float = 0.9  # on a drop
    # Headroom added per sample (Netflix's queueSize, 4 for limits in the hundreds; an LLM
    # engine's knee is at a few sequences, and few requests finish per second).
    queue_allowance: float = 1.0
    short_rtt: float | None = None
    base_rtt: float | None = None

    def update(self, rtt: float, inflight: int, dropped: bool) -> float:
        """One finished request: its latency (s), the most requests in flight while it ran,
        and whether it was dropped downstream. Returns the new limit."""
        if dropped:
            self.limit = max(float(self.min_limit), self.limit * self.backoff)
            return self.limit
        self.short_rtt = _ema(self.short_rtt, rtt, self.short_window)
        base = rtt if self.base_rtt is None else self.base_rtt
        self.base_rtt = min(rtt, base + (rtt - base) / self.drift_window)
        if inflight < self.limit / 2:  # app-limited: the sample says nothing about capacity
            return self.limit
        gradient = max(0.5, min(1.0, self.tolerance * self.base_rtt / self.short_rtt))
        target = self.limit * gradient + self.queue_allowance
        new = self.limit * (1 - self.smoothing) + target * self.smoothing
        self.limit = max(float(self.min_limit), min(float(self.max_limit), new))
        return self.limit


def _ema(avg: float | None, x: float, window: int) -> float:
    return x if avg is None else avg + (x - avg) * 2.0 / (window + 1)


# What a finished request tells the limit: a drop (capacity ran out) or nothing at all.
_DROPS = (EngineUnavailable, DeadlineExceeded)


@dataclass
class Limiter:
    """Admit or shed (429 + Retry-After); time each admitted request into the limit."""

    name: str
    ceiling: int
    limit: GradientLimit | None = None  # None: the fixed ceiling only
    clock: Callable[[], float] = time.monotonic
    on_change: Callable[[str, int, float], None] | None = None  # (name, inflight, limit)
    inflight: int = 0
    shed: int = field(default=0)

    @property
    def current(self) -> int:
        lim = self.ceiling if self.limit is None else int(self.limit.limit)
        return max(1, min(self.ceiling, lim))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.inflight >= self.current:
            self.shed += 1
            raise Overloaded(f"{self.inflight} requests in flight (limit {self.current}, "
                             f"ceiling {self.ceiling})", retry_after_s=1)
        started, at = self.clock(), self.inflight
        self.inflight += 1
        self._notify()
        dropped: bool | None = False
        try:
            yield
        except _DROPS:
            dropped = True
            raise
        except BaseException:  # bad input, a cancelled (gone) client: ignored, re-raised
            dropped = None
            raise
        finally:
            self.inflight -= 1
            if dropped is not None and self.limit is not None:  # busiest it saw: start or end
                self.limit.update(self.clock() - started, max(at, self.inflight) + 1, dropped)
            self._notify()

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change(self.name, self.inflight, float(self.current))


def admission_pools(settings: Settings, metrics: Metrics) -> dict[str, Limiter]:
    """The answer pool (``/v1/answer``, chat) and the score pool, each with its own limit
    (they load different things: the engine, the embedder/NLI), and the feedback pool, a
    fixed count (``max_inflight_feedback``: a label's latency is the decision log's commit,
    which says nothing about the engine's capacity)."""
    adaptive = settings.admission == "adaptive"
    ceiling = settings.max_inflight
    initial = min(ceiling, settings.admission_initial_limit)

    def publish(pool: str, inflight: int, limit: float) -> None:
        metrics.admission_limit.labels(pool=pool).set(limit)
        if pool == "answers":
            metrics.inflight.set(inflight)

    pools: dict[str, Limiter] = {}
    for name in ("answers", "score"):
        lim = GradientLimit(limit=float(initial), max_limit=ceiling) if adaptive else None
        pools[name] = Limiter(name, ceiling, lim, on_change=publish)
        pools[name]._notify()
    pools["feedback"] = Limiter("feedback", settings.max_inflight_feedback, None,
                                on_change=publish)
    pools["feedback"]._notify()
    return pools
