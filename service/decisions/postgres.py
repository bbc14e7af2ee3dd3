"""The PostgreSQL decision store (psycopg 3), shared by every replica.

The reads that rebuild the live monitors run on a connection of their own (the writer's
stays the writer's): ``audit_counts`` and ``recent_decisions`` as SQLite has them, and
``audit_changes``, what every replica re-reads each ``CANDOR_MONITOR_REFRESH_S``
(``monitoring/refresh.py``; docs/operations.md, "Live monitoring").

**What changed since the last read, with replicas committing concurrently.** Every insert,
upsert and label sets the row's ``xact`` to the id of the transaction that wrote it
(``pg_current_xact_id()``, column default). A read runs in one REPEATABLE READ transaction
and hands back its snapshot (``pg_current_snapshot()``); the next read takes the rows whose
``xact`` that snapshot did not see (``NOT pg_visible_in_snapshot``; the index on ``xact``
bounds the scan below the snapshot's ``xmin``). A row becomes visible exactly when its
transaction commits, so a transaction still open at one read, however long it stays open
and in whatever order replicas commit, is read by the first read after its commit, and
never again. A watermark on a sequence or a timestamp would skip it: a larger id or a
later time may commit first. Deleted rows (retention) are not seen; the ledger expires
them by the same rule (``monitoring/ledger.py``).
"""

from __future__ import annotations

import threading
from typing import Any

from service.decisions.records import (
    AuditCounts,
    AuditedRow,
    AuditRead,
    LabelledDecision,
    RecentDecision,
    recent_decision,
    thinned_counts,
)
from service.decisions.store import DecisionStore, Label, Row, _label

_PG_TYPES = {"TEXT": "TEXT", "REAL": "DOUBLE PRECISION", "INTEGER": "BIGINT"}
_TOUCH = ", xact = DEFAULT"  # a write marks the row with its transaction's id
_PROMISE = ("target_risk IS NOT NULL AND calibration_id IS NOT NULL "
            "AND profile IS NOT NULL")
_SINCE = ("xact >= pg_snapshot_xmin(%(since)s::pg_snapshot) "
          "AND NOT pg_visible_in_snapshot(xact, %(since)s::pg_snapshot)")
_RATES = """
SELECT profile, calibration_id, target_risk, MIN(audit_rate) FROM decisions
WHERE {where} AND audit_rate > 0 GROUP BY profile, calibration_id, target_risk
"""
_AUDITED = """
SELECT profile, calibration_id, target_risk, id, audit_rate, decision, label, ts
FROM decisions WHERE audit = 1 AND {where}
"""
_RECENT = """
SELECT profile, calibration_id, target_risk, stage_reached, stages, signals FROM decisions
WHERE calibration_id = %s ORDER BY ts DESC LIMIT %s
"""


class PostgresStore(DecisionStore):
    """psycopg 3: one connection owned by the writer thread and one for the reads, each
    reconnected after a failure."""

    shared = True

    def __init__(self, url: str, columns: tuple[tuple[str, str], ...],
                 label_columns: tuple[str, ...]) -> None:
        super().__init__(columns, label_columns)
        self.url = url
        cols = ", ".join(n + " " + " ".join([_PG_TYPES[t.split()[0]], *t.split()[1:]])
                         for n, t in columns)
        self._ddl = [f"CREATE TABLE IF NOT EXISTS decisions ({cols})",
                     "CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts)",
                     *(f"ALTER TABLE decisions ADD COLUMN IF NOT EXISTS {n} "
                       f"{_PG_TYPES[t.split()[0]]}" for n, t in columns if n != "id"),
                     "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS xact xid8 "
                     "DEFAULT pg_current_xact_id()",
                     "CREATE INDEX IF NOT EXISTS decisions_xact ON decisions (xact)"]
        names = ", ".join(self.row_names)
        update = ", ".join(f"{n} = EXCLUDED.{n}" for n in self.row_names if n != "id")
        self._insert = (f"INSERT INTO decisions ({names}) VALUES "
                        f"({', '.join(f'%({n})s' for n in self.row_names)}) "
                        f"ON CONFLICT (id) DO UPDATE SET {update}{_TOUCH}")
        self._conn: Any = None
        self._reader: Any = None
        self._read_lock = threading.Lock()
        self._connect()

    def _connect(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, connect_timeout=10)
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(7370601)")  # replicas race
                for stmt in self._ddl:
                    self._conn.execute(stmt)
        return self._conn

    def _run(self, fn: Any) -> Any:
        import psycopg

        try:
            conn = self._connect()
            with conn.transaction():
                return fn(conn)
        except psycopg.OperationalError:
            if self._conn is not None:
                self._conn.close()  # the next call reconnects
            raise

    def write(self, rows: list[Row], labels: list[Label]) -> list[LabelledDecision | None]:
        def tx(conn: Any) -> list[LabelledDecision | None]:
            with conn.cursor() as cur:
                if rows:
                    cur.executemany(self._insert, rows)
                return [_label(cur, "%s", label, _TOUCH) for label in labels]

        return list(self._run(tx))

    def prune(self, cutoff_ts: float) -> int:
        return int(self._run(lambda c: c.execute("DELETE FROM decisions WHERE ts < %s",
                                                 (cutoff_ts,)).rowcount))

    def labelled(self) -> list[Row]:
        def tx(conn: Any) -> list[Row]:
            cur = conn.execute("SELECT * FROM decisions WHERE label IS NOT NULL ORDER BY ts")
            names = [d.name for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

        return list(self._run(tx))

    # -- the reads that rebuild the live monitors --------------------------------------------
    def _read(self, fn: Any) -> Any:
        """``fn(conn)`` in one read-only REPEATABLE READ transaction (one snapshot)."""
        import psycopg

        with self._read_lock:
            try:
                if self._reader is None or self._reader.closed:
                    self._reader = psycopg.connect(self.url, connect_timeout=10,
                                                   autocommit=True)
                    self._reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                    self._reader.read_only = True
                with self._reader.transaction():
                    return fn(self._reader)
            except psycopg.OperationalError:
                if self._reader is not None:
                    self._reader.close()  # the next read reconnects
                raise

    def audit_changes(self, since: str | None) -> AuditRead:
        where, params = (_PROMISE, None) if since is None else (
            f"{_PROMISE} AND {_SINCE}", {"since": since})

        def tx(conn: Any) -> AuditRead:
            snapshot = conn.execute("SELECT pg_current_snapshot()::text").fetchone()[0]
            lowest = {(p, c, float(t)): r for p, c, t, r
                      in conn.execute(_RATES.format(where=where), params)}
            audited = [AuditedRow(*row) for row in
                       conn.execute(_AUDITED.format(where=where), params)]
            return AuditRead(lowest, audited, snapshot)

        result: AuditRead = self._read(tx)
        return result

    def audit_counts(self, current_rate: float = 0.0) -> list[AuditCounts]:
        read = self.audit_changes(None)
        return thinned_counts(read.lowest, read.audited, current_rate)

    def recent_decisions(self, calibration_id: str, limit: int) -> list[RecentDecision]:
        rows = self._read(lambda c: c.execute(_RECENT, (calibration_id, limit)).fetchall())
        return [recent_decision(*row) for row in reversed(rows)]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()


