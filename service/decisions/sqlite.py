"""The SQLite decision store (the embedded default: WAL, ``synchronous=FULL``).

Rebuilding the live monitors at startup (``audit_counts``, ``recent_decisions``) reads the
log on a read-only connection of its own (the writer's stays the writer's).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from service.decisions.records import (
    AuditCounts,
    AuditedRow,
    LabelledDecision,
    RecentDecision,
    recent_decision,
    thinned_counts,
)
from service.decisions.store import DecisionStore, Label, Row, _label

# The reads that rebuild the live monitors (SQLite; only committed rows exist, which is
# what a restart can keep).
_PROMISE = ("target_risk IS NOT NULL AND calibration_id IS NOT NULL "
            "AND profile IS NOT NULL")
_RATES = f"""
SELECT profile, calibration_id, target_risk, MIN(audit_rate) FROM decisions
WHERE {_PROMISE} AND audit_rate > 0 GROUP BY profile, calibration_id, target_risk
"""
_AUDITED = f"""
SELECT profile, calibration_id, target_risk, id, audit_rate, decision, label, ts
FROM decisions WHERE audit = 1 AND {_PROMISE}
"""
_RECENT = """
SELECT profile, calibration_id, target_risk, stage_reached, stages, signals FROM decisions
WHERE calibration_id = ? ORDER BY ts DESC LIMIT ?
"""


class SqliteStore(DecisionStore):
    def __init__(self, path: Path, columns: tuple[tuple[str, str], ...],
                 label_columns: tuple[str, ...], readonly: bool = False) -> None:
        super().__init__(columns, label_columns)
        self.path = Path(path)
        if readonly:
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30.0)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False,
                               isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS decisions ("
                     + ", ".join(f"{n} {t}" for n, t in columns) + ")")
        conn.execute("CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts)")
        have = {r[1] for r in conn.execute("PRAGMA table_info(decisions)")}
        for name, typ in columns:  # a log written by an older Candor gains the new columns
            if name not in have:
                conn.execute(f"ALTER TABLE decisions ADD COLUMN {name} {typ.split()[0]}")
        self._conn = conn
        self._insert = (f"INSERT OR REPLACE INTO decisions ({', '.join(self.row_names)}) "
                        f"VALUES ({', '.join(':' + n for n in self.row_names)})")

    def write(self, rows: list[Row], labels: list[Label]) -> list[LabelledDecision | None]:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")  # the write lock up front: no upgrade deadlock
        try:
            c.executemany(self._insert, rows)
            out = [_label(c, "?", label) for label in labels]
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        return out

    def prune(self, cutoff_ts: float) -> int:
        with self._conn:
            return int(self._conn.execute("DELETE FROM decisions WHERE ts < ?",
                                          (cutoff_ts,)).rowcount)

    def labelled(self) -> list[Row]:
        self._conn.row_factory = sqlite3.Row
        rows = self._conn.execute("SELECT * FROM decisions WHERE label IS NOT NULL "
                                  "ORDER BY ts").fetchall()
        return [dict(r) for r in rows]

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One read on a read-only connection of its own ([] when the file is gone)."""
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30.0)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def audit_counts(self, current_rate: float = 0.0) -> list[AuditCounts]:
        lowest = {(p, c, float(t)): r for p, c, t, r in self._read(_RATES)}
        audited = [AuditedRow(*row) for row in self._read(_AUDITED)]
        return thinned_counts(lowest, audited, current_rate)

    def recent_decisions(self, calibration_id: str, limit: int) -> list[RecentDecision]:
        rows = self._read(_RECENT, (calibration_id, limit))
        return [recent_decision(*row) for row in reversed(rows)]

    def close(self) -> None:
        self._conn.close()


