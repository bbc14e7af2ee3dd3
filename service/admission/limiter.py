"""Fixed pools of requests in flight: beyond the count, 429 + Retry-After at once.

``Limiter.slot`` admits a request while fewer than ``ceiling`` are in flight (no await
between the check and the increment). Three pools use it:

* ``score`` (``/v1/score``, ``CANDOR_MAX_INFLIGHT``): it loads the embedder and the NLI
  model, not the engine;
* ``feedback`` (``POST /v1/feedback``, ``CANDOR_MAX_INFLIGHT_FEEDBACK``): a label's latency
  is the decision log's commit, and a flood of labels must not queue without bound in front
  of the writer and the event loop;
* ``answers`` under ``CANDOR_ADMISSION=fixed`` only (``CANDOR_MAX_INFLIGHT`` cascades);
  the default admits answers through the engine queue (``queue.py``) instead, where the
  pool only counts what is in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from service.errors import Overloaded


@dataclass
class Limiter:
    """Admit or shed (429 + Retry-After); count what is in flight."""

    name: str
    ceiling: int | None  # None: count only, never shed
    on_change: Callable[[str, int], None] | None = None  # (name, inflight)
    inflight: int = 0
    shed: int = field(default=0)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.ceiling is not None and self.inflight >= self.ceiling:
            self.shed += 1
            raise Overloaded(f"{self.inflight} requests in flight (limit {self.ceiling})",
                             retry_after_s=1)
        self.inflight += 1
        self._notify()
        try:
            yield
        finally:
            self.inflight -= 1
            self._notify()

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change(self.name, self.inflight)
