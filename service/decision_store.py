"""Where the decision log's rows live: one small interface, SQLite or PostgreSQL.

``open_store(url)``: ``sqlite:///path`` (or a bare path; the embedded default) or
``postgresql://...`` (psycopg 3; shared by every replica). The table comes from the one
``COLUMNS`` list in ``decision_log.py``; each dialect only maps its types and its upsert.
A store is used by one writer thread at a time (plus ``labelled`` from the read side).

Durability: SQLite runs WAL with ``synchronous=FULL``; PostgreSQL commits with its default
``synchronous_commit=on`` (the WAL is flushed before COMMIT returns). Either way a write
returns only after the commit is durable, and feedback is acknowledged only after that.
"""

from __future__ import annotations

import sqlite3
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

Row = dict[str, Any]
Label = tuple[str, bool, str]  # (answer id, correct, labeller)


class DecisionStore(ABC):
    shared = False  # True: other replicas write here too (feedback may precede the row)

    def __init__(self, columns: tuple[tuple[str, str], ...], label_columns: tuple[str, ...]):
        self.columns = columns
        self.row_names = tuple(n for n, _ in columns if n not in label_columns)

    @abstractmethod
    def write(self, rows: list[Row], labels: list[Label]) -> list[Row | None]:
        """Insert ``rows`` then apply ``labels`` in one committed transaction; per label:
        the labelled decision's audit flag and promise (``_label``), or None when the id is
        unknown."""

    @abstractmethod
    def prune(self, cutoff_ts: float) -> int: ...

    @abstractmethod
    def labelled(self) -> list[Row]:
        """Labelled decisions, oldest first, as stored (JSON columns still text)."""

    @abstractmethod
    def close(self) -> None: ...


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

    def write(self, rows: list[Row], labels: list[Label]) -> list[Row | None]:
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

    def close(self) -> None:
        self._conn.close()


_PG_TYPES = {"TEXT": "TEXT", "REAL": "DOUBLE PRECISION", "INTEGER": "BIGINT"}


class PostgresStore(DecisionStore):
    """psycopg 3, one connection owned by the writer thread (reconnected after a failure)."""

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

    def write(self, rows: list[Row], labels: list[Label]) -> list[Row | None]:
        def tx(conn: Any) -> list[Row | None]:
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


LABELLED = ("audit", "audit_rate", "decision", "target_risk", "calibration_id", "profile",
            "label")


def _label(cur: Any, ph: str, label: Label) -> dict[str, Any] | None:
    """Label one decision; what it labelled (``label``: the label it replaced), or None."""
    rid, correct, labeller = label
    row = cur.execute(f"SELECT {', '.join(LABELLED)} FROM decisions WHERE id = {ph}",
                      (rid,)).fetchone()
    if row is None:
        return None
    cur.execute(f"UPDATE decisions SET label = {ph}, label_ts = {ph}, labeller = {ph} "
                f"WHERE id = {ph}", (int(correct), time.time(), labeller, rid))
    return dict(zip(LABELLED, row, strict=True))


def open_store(url: str | Path, columns: tuple[tuple[str, str], ...],
               label_columns: tuple[str, ...], readonly: bool = False) -> DecisionStore:
    """``sqlite:///path``, a bare path, or ``postgresql://`` / ``postgres://``."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStore(text, columns, label_columns)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///"):]  # as SQLAlchemy: sqlite:////abs, sqlite:///rel
    elif "://" in text:
        raise ValueError(f"unsupported decision log URL {text!r} (sqlite:/// or postgresql://)")
    return SqliteStore(Path(text), columns, label_columns, readonly=readonly)


def redact(url: str | Path) -> str:
    """The URL without its password, for logs and errors."""
    text = str(url)
    if "://" in text and "@" in text:
        scheme, rest = text.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return text
