"""Admission: what gets in, and in which order it reaches the engine.

* ``queue.py``: the engine queue (default, ``CANDOR_ADMISSION=queue``): sequences as the
  unit, escalations before new arrivals, a 429 only when the queue is full or the request
  could not finish within its budget; no call starts that could not finish in time.
* ``speed.py``: the engine's measured decode rates, and a pass's predicted time.
* ``gate.py``: the engine wrapper whose calls take their sequences, and the per-request
  ticket.
* ``limiter.py``: fixed pools (``score``, ``feedback``; ``answers`` under
  ``CANDOR_ADMISSION=fixed``).
"""

from __future__ import annotations

from service.admission.gate import GatedEngine
from service.admission.limiter import Limiter
from service.admission.queue import EngineQueue
from service.config import Settings
from service.engine.protocol import EngineClient
from service.metrics import Metrics


def admission_pools(settings: Settings, metrics: Metrics) -> dict[str, Limiter]:
    """The answers pool (a fixed ceiling only under ``CANDOR_ADMISSION=fixed``; otherwise it
    counts, and the engine queue admits), the score pool and the feedback pool."""

    def publish(pool: str, inflight: int) -> None:
        if pool == "answers":
            metrics.inflight.set(inflight)

    answers = settings.max_inflight if settings.admission == "fixed" else None
    pools = {"answers": Limiter("answers", answers, publish),
             "score": Limiter("score", settings.max_inflight, publish),
             "feedback": Limiter("feedback", settings.max_inflight_feedback, publish)}
    for pool in pools.values():
        if pool.ceiling is not None:
            metrics.admission_limit.labels(pool=pool.name).set(pool.ceiling)
    return pools


def engine_queue(settings: Settings, metrics: Metrics) -> EngineQueue | None:
    """The engine queue (None under ``CANDOR_ADMISSION=fixed``), exported at each scrape."""
    if settings.admission == "fixed":
        return None
    queue = EngineQueue(capacity=settings.engine_sequences, queue_max=settings.queue_max,
                        floor=settings.samples_n + 1)
    metrics.engine_sequences.labels(state="running").set_function(lambda: queue.running)
    metrics.engine_sequences.labels(state="waiting").set_function(lambda: queue.waiting)
    metrics.engine_sequences.labels(state="limit").set_function(lambda: queue.limit)
    metrics.queue_pending.set_function(lambda: queue.pending)
    metrics.engine_token_rate.set_function(lambda: queue.speed.total or 0.0)
    return queue


def gate(engine: EngineClient, queue: EngineQueue | None, metrics: Metrics) -> EngineClient:
    """The engine the cascade calls: behind the queue, or as it is (fixed admission)."""
    if queue is None:
        return engine
    return GatedEngine(engine, queue, on_wait=metrics.queue_wait.observe)


__all__ = ["EngineQueue", "GatedEngine", "Limiter", "admission_pools", "engine_queue", "gate"]
