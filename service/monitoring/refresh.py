"""Live monitors taken from a decision log shared by replicas, refreshed every interval.

Behind one PostgreSQL log, N replicas must report one verdict per promise. So a replica's
monitors take their state from the log only (``Monitoring.from_log``): its own decisions
and labels are not counted as they happen, because the log holds them too and counting
both would count them twice. At startup ``refresh`` reads the whole audit sample into an
``AuditLedger``; then every ``CANDOR_MONITOR_REFRESH_S`` it reads what any replica
committed since (``DecisionLog.audit_changes``: a snapshot watermark, correct under
concurrent writers; ``decisions/postgres.py``) and each active artifact's drift window
(its last ``CANDOR_DRIFT_WINDOW`` decisions: a bounded read). A replica's view is the log
as of ``refreshed_at``; two replicas differ only by what was committed between their last
refreshes, so a label committed through any replica moves every replica's verdict within
one interval (its own included: it too waits for the next refresh).

A failed read is logged and counted (``errors``, ``candor_monitor_refresh_errors_total``)
and retried at the next interval from the same watermark, so nothing is skipped or counted
twice, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from service.decisions.log import DecisionLog
from service.decisions.records import AuditRead, RecentDecision
from service.decisions.store import redact
from service.metrics import Metrics
from service.monitoring.hub import Monitoring
from service.monitoring.ledger import AuditLedger

log = logging.getLogger(__name__)


@dataclass
class MonitorRefresher:
    """One replica's monitors, kept equal to the shared log's every ``interval_s``."""

    dlog: DecisionLog
    monitoring: Monitoring
    ledger: AuditLedger
    metrics: Metrics
    interval_s: float
    window: int  # decisions in a drift window (CANDOR_DRIFT_WINDOW)
    snapshot: str | None = None  # where the next read of the log starts (None: all of it)
    refreshed_at: float | None = None  # unix time the last successful read began
    errors: int = 0
    last_error: str | None = None

    async def refresh(self) -> bool:
        """Read what the log committed since the last read, and set the monitors from it.
        False when the read failed (logged and counted; the monitors stay as they were)."""
        ids = [act.calibration_id for act in self.monitoring.active.values()]
        started = time.time()
        try:
            read, recent = await asyncio.to_thread(self._read, ids)
        except Exception as exc:  # noqa: BLE001 - counted, logged, retried next interval
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            self.metrics.monitor_refresh_errors.inc()
            log.error("live monitors not refreshed from %s (retried in %.0f s): %s",
                      redact(self.dlog.url), self.interval_s, self.last_error)
            return False
        self.monitoring.restore(self.ledger.apply(read, started), recent)
        self.snapshot = read.snapshot
        self.refreshed_at = started
        self.last_error = None
        return True

    def _read(self, ids: list[str]) -> tuple[AuditRead, list[RecentDecision]]:
        read = self.dlog.audit_changes(self.snapshot)
        recent = [d for cal_id in ids for d in self.dlog.recent_decisions(cal_id, self.window)]
        return read, recent

    async def run(self) -> None:
        """Refresh every ``interval_s`` until cancelled (the app's lifespan)."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.refresh()


def freshness(refresher: MonitorRefresher | None, now: float) -> dict[str, Any]:
    """How fresh a replica's monitors are (``GET /v1/calibration`` -> ``monitors``)."""
    if refresher is None:
        return {"source": "local", "refresh_interval_s": None, "refreshed_at": None,
                "age_s": None, "errors": 0, "last_error": None}
    at = refresher.refreshed_at
    return {"source": "shared_log", "refresh_interval_s": refresher.interval_s,
            "refreshed_at": at, "age_s": None if at is None else max(0.0, now - at),
            "errors": refresher.errors, "last_error": refresher.last_error}
