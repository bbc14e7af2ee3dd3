"""The audit sample of a shared decision log, summed per promise as the log holds it.

A replica behind a shared (PostgreSQL) log keeps one entry per audited decision with a
promise (``AuditedRow``: id, audit rate, decision, label, time) and, per promise, the sums
its monitor shows (``records.contribution``, thinned as ``records.thinned_counts`` thins).
``apply`` takes one read of the log (``DecisionLog.audit_changes``: the first in full, then
what was committed since): a new row adds its share, a relabelled one swaps its old share
for its new one, a lower audit rate re-thins its promise from the entries held, and rows
older than the retention window (``CANDOR_LOG_RETENTION_DAYS``) leave, as the log prunes
them. The sums are therefore ``thinned_counts`` of the window's rows, whatever order the
reads came in, so replicas that have read the same commits hold the same sums. The lowest
audit rate of a promise only falls while a replica runs (a restart re-reads it).

Memory: one entry per audited decision in the window (audit rate x traffic x retention).
"""

from __future__ import annotations

import heapq
from collections import defaultdict

from service.audit import common_rate
from service.decisions.records import (
    AuditCounts,
    AuditedRow,
    AuditRead,
    PromiseId,
    contribution,
)


class AuditLedger:
    """The audited decisions of a shared log within the retention window, and per promise
    their thinned sums (decisions, abstained, labelled answered, wrong answered)."""

    def __init__(self, current_rate: float, retention_s: float) -> None:
        self.current_rate = current_rate  # the server's audit rate: what comes next thins to it
        self.retention_s = retention_s
        self.rows: dict[str, AuditedRow] = {}
        self.lowest: dict[PromiseId, float] = {}
        self.sums: dict[PromiseId, list[int]] = {}
        self._ids: dict[PromiseId, set[str]] = defaultdict(set)
        self._expiry: list[tuple[float, str]] = []  # a heap of (ts, id)

    def common(self, key: PromiseId) -> float | None:
        """The rate a promise's sample is thinned to (None: no positive rate known)."""
        return common_rate([self.lowest[key], self.current_rate]) if key in self.lowest else None

    def apply(self, read: AuditRead, now: float) -> list[AuditCounts]:
        """Take one read of the log; the sums of every promise it changed, as of ``now``."""
        touched: set[PromiseId] = set()
        rethin: set[PromiseId] = set()
        for key, rate in read.lowest.items():
            if key not in self.lowest or rate < self.lowest[key]:
                before = self.common(key)
                self.lowest[key] = rate
                touched.add(key)
                if self.common(key) != before:
                    rethin.add(key)
        cutoff = now - self.retention_s
        for row in read.audited:
            if row.ts >= cutoff:
                self._put(row)
                touched.add(row.promise)
        touched |= self._expire(cutoff)
        for key in rethin:
            self.sums[key] = [0, 0, 0, 0]
            for rid in self._ids[key]:
                self._add(self.rows[rid], 1)
        return [self.counts(key) for key in sorted(touched) if key in self.lowest]

    def counts(self, key: PromiseId) -> AuditCounts:
        n, abstained, labelled, errors = self.sums.get(key, [0, 0, 0, 0])
        return AuditCounts(*key, n, abstained, labelled, errors, self.common(key))

    def _put(self, row: AuditedRow) -> None:
        old = self.rows.get(row.id)
        if old is None:
            heapq.heappush(self._expiry, (row.ts, row.id))
        else:  # relabelled (or rewritten): its old share leaves
            self._add(old, -1)
            self._ids[old.promise].discard(old.id)
        self.rows[row.id] = row
        self._ids[row.promise].add(row.id)
        self._add(row, 1)

    def _expire(self, cutoff: float) -> set[PromiseId]:
        gone: set[PromiseId] = set()
        while self._expiry and self._expiry[0][0] < cutoff:
            _, rid = heapq.heappop(self._expiry)
            row = self.rows.pop(rid, None)
            if row is not None:
                self._add(row, -1)
                self._ids[row.promise].discard(rid)
                gone.add(row.promise)
        return gone

    def _add(self, row: AuditedRow, sign: int) -> None:
        sums = self.sums.setdefault(row.promise, [0, 0, 0, 0])
        for i, v in enumerate(contribution(row, self.common(row.promise))):
            sums[i] += sign * v
