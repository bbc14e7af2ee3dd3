"""The PostgreSQL decision store (psycopg 3), shared by every replica.

A shared log does not rebuild a replica's live monitors: each starts empty and counts
what it sees (``restores_monitors`` is False; docs/operations.md, "Restarts").
"""

from __future__ import annotations

from typing import Any

from service.decisions.records import LabelledDecision
from service.decisions.store import DecisionStore, Label, Row, _label

_PG_TYPES = {"TEXT": "TEXT", "REAL": "DOUBLE PRECISION", "INTEGER": "BIGINT"}


class PostgresStore(DecisionStore):
    """psycopg 3, one connection owned by the writer thread (reconnected after a failure).
    Shared by replicas, so it does not rebuild a replica's live monitors (each starts
    empty and counts what it sees)."""

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
                       f"{_PG_TYPES[t.split()[0]]}" for n, t in columns if n != "id")]
        names = ", ".join(self.row_names)
        update = ", ".join(f"{n} = EXCLUDED.{n}" for n in self.row_names if n != "id")
        self._insert = (f"INSERT INTO decisions ({names}) VALUES "
                        f"({', '.join(f'%({n})s' for n in self.row_names)}) "
                        f"ON CONFLICT (id) DO UPDATE SET {update}")
        self._conn: Any = None
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
                return [_label(cur, "%s", label) for label in labels]

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

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


