"""The durable decision log: every cascade decision appended to SQLite (WAL), off the request path.

One writer thread owns the connection. Requests only put a row on a bounded queue
(``record`` never blocks; when the queue is full the row is dropped and counted,
the request is never slowed). Feedback goes through the same FIFO queue, so it
always lands after the decision it labels, and ``feedback`` resolves only after
its transaction is committed with ``synchronous=FULL``: an acknowledged label
survives a kill -9 (and a power cut). Decision rows still in the queue when the
process is killed are lost; that loss is bounded by the queue and documented.

No raw question or answer text is stored unless ``log_text`` is set.
``labelled_entries(path)`` is the read side for recalibration (``candor calibrate
--from-log``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service import schemas
from service.errors import DeadlineExceeded

log = logging.getLogger(__name__)

# Every column of a decision row, in order, with its SQLite type (one list: the schema,
# the insert, and the migration of an older file are all derived from it).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "TEXT PRIMARY KEY"), ("ts", "REAL NOT NULL"), ("endpoint", "TEXT"), ("model", "TEXT"),
    ("calibration_id", "TEXT"), ("calibrated", "INTEGER"), ("decision", "TEXT"),
    ("reason", "TEXT"), ("confidence", "REAL"), ("stage_reached", "INTEGER"),
    ("signals", "TEXT"), ("stages", "TEXT"), ("completion_tokens", "INTEGER"),
    ("question", "TEXT"), ("answer", "TEXT"),
    # the promise and the audit sample (docs/calibration.md, "Audit sampling")
    ("profile", "TEXT"), ("target_risk", "REAL"), ("audit", "INTEGER"), ("audit_rate", "REAL"),
    ("serving", "TEXT"),  # JSON: the serving settings of this decision (calibration/pinning.py)
    ("label", "INTEGER"), ("label_ts", "REAL"),
)
LABEL_COLUMNS = ("label", "label_ts")
_ROW = tuple(name for name, _ in COLUMNS if name not in LABEL_COLUMNS)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS decisions ("
    + ", ".join(f"{n} {t}" for n, t in COLUMNS) + ");\n"
    "CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts);\n"
)
_INSERT = (
    f"INSERT OR REPLACE INTO decisions ({', '.join(_ROW)}) "
    f"VALUES ({', '.join(':' + n for n in _ROW)})"
)
_BATCH = 512
_PRUNE_EVERY_S = 3600.0


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with full fsync on commit (the table is created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(SCHEMA)
    have = {r[1] for r in conn.execute("PRAGMA table_info(decisions)")}
    for name, typ in COLUMNS:  # a log written by an older Candor gains the new columns
        if name not in have:
            conn.execute(f"ALTER TABLE decisions ADD COLUMN {name} {typ.split()[0]}")
    conn.commit()
    return conn


@dataclass(frozen=True)
class Labelled:
    """A committed label and the decision it labelled (``previous``: the label it replaced)."""

    id: str
    audit: bool
    decision: str | None
    target_risk: float | None
    calibration_id: str | None
    profile: str | None
    correct: bool
    previous: bool | None


class DecisionLog:
    """Append-only decision log with a background writer. ``close`` flushes what is queued."""

    def __init__(self, path: Path, *, log_text: bool = False, retention_days: int = 30,
                 max_queue: int = 10_000) -> None:
        self.path = Path(path)
        self.log_text = log_text
        self.retention_s = retention_days * 86400.0
        self.dropped = 0
        self.written = 0
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max_queue)
        self._conn = connect(self.path)
        self.prune()
        self._thread = threading.Thread(target=self._run, name="candor-decision-log",
                                        daemon=True)
        self._thread.start()

    # -- request side (event loop) -----------------------------------------------------------
    def record(self, resp: schemas.AnswerResponse, req: schemas.AnswerRequest,
               endpoint: str, serving: str | None = None) -> None:
        """Queue one decision; never blocks (a full queue drops the row and counts it)."""
        row = {
            "id": resp.id, "ts": time.time(), "endpoint": endpoint, "model": resp.model,
            "calibration_id": resp.calibration.id, "calibrated": int(resp.calibrated),
            "decision": resp.decision, "reason": resp.reason, "confidence": resp.confidence,
            "stage_reached": resp.stage_reached,
            "signals": json.dumps(resp.signals.model_dump(exclude_none=True)),
            "stages": json.dumps([s.model_dump() for s in resp.stages]),
            "completion_tokens": resp.usage.completion_tokens,
            "question": req.question if self.log_text else None,
            "answer": resp.answer if self.log_text else None,
            "profile": resp.calibration.profile, "target_risk": resp.calibration.target_risk,
            "audit": int(resp.audit), "audit_rate": resp.audit_rate, "serving": serving,
        }
        try:
            self._q.put_nowait(("decision", row))
        except queue.Full:
            self.dropped += 1
            log.warning("decision log queue full; dropped %s (%d so far)", resp.id, self.dropped)

    async def feedback(self, answer_id: str, correct: bool,
                       timeout_s: float = 30.0) -> Labelled | None:
        """Label a logged decision once committed: the labelled row (its audit flag and the
        promise it carried, for live monitoring), or None when the id is unknown."""
        fut: concurrent.futures.Future[Labelled | None] = concurrent.futures.Future()
        await asyncio.to_thread(self._q.put, ("feedback", (answer_id, correct, fut)))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout_s)
        except TimeoutError as exc:
            raise DeadlineExceeded("the decision log did not commit the label in time; retry",
                                   param="id") from exc

    # -- writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        last_prune = time.monotonic()
        while True:
            try:
                first = self._q.get(timeout=60.0)
            except queue.Empty:
                first = None
            batch = [first] if first is not None else []
            while len(batch) < _BATCH:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            stop = any(kind == "stop" for kind, _ in batch)
            self._write([item for item in batch if item[0] != "stop"])
            if time.monotonic() - last_prune > _PRUNE_EVERY_S:
                self.prune()
                last_prune = time.monotonic()
            if stop:
                return

    def _write(self, batch: list[tuple[str, Any]]) -> None:
        if not batch:
            return
        results: list[tuple[concurrent.futures.Future[Labelled | None], Labelled | None]] = []
        try:
            with self._conn:  # one transaction for the batch, committed before any ack
                for kind, item in batch:
                    if kind == "decision":
                        self._conn.execute(_INSERT, item)
                        self.written += 1
                    else:
                        answer_id, correct, fut = item
                        results.append((fut, self._label(answer_id, correct)))
        except sqlite3.Error as exc:
            log.error("decision log write failed: %s", exc)
            for kind, item in batch:
                if kind == "feedback":
                    _settle(item[2], exc)
            return
        for fut, stored in results:
            _settle(fut, stored)

    def _label(self, answer_id: str, correct: bool) -> Labelled | None:
        """Label one decision (inside the batch's transaction); what it labelled, or None."""
        row = self._conn.execute(
            "SELECT audit, decision, target_risk, calibration_id, profile, label "
            "FROM decisions WHERE id = ?", (answer_id,)).fetchone()
        if row is None:
            return None
        self._conn.execute("UPDATE decisions SET label = ?, label_ts = ? WHERE id = ?",
                           (int(correct), time.time(), answer_id))
        audit, decision, target_risk, calibration_id, profile, previous = row
        return Labelled(answer_id, bool(audit), decision, target_risk, calibration_id, profile,
                        correct, None if previous is None else bool(previous))

    def prune(self) -> int:
        """Delete decisions older than the retention window; returns how many went."""
        cutoff = time.time() - self.retention_s
        with self._conn:
            n = self._conn.execute("DELETE FROM decisions WHERE ts < ?", (cutoff,)).rowcount
        if n:
            log.info("decision log: pruned %d entries older than the retention window", n)
        return int(n)

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush the queue, stop the writer and close the connection."""
        if self._thread.is_alive():
            self._q.put(("stop", None))
            self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._conn.close()


def _settle(fut: concurrent.futures.Future[Labelled | None],
            outcome: Labelled | None | BaseException) -> None:
    """Resolve a feedback future unless its waiter gave up (cancelled) already."""
    try:
        if isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)
    except concurrent.futures.InvalidStateError:
        pass


def labelled_entries(path: Path | str) -> list[dict[str, Any]]:
    """Labelled decisions for recalibration, oldest first.

    Each dict: ``id``, ``ts`` (unix seconds), ``model``, ``calibration_id``, ``decision``,
    ``reason``, ``confidence``, ``stage_reached``, ``signals`` (the response's raw signal
    values, e.g. ``mean_nll``, ``consistency``), ``stages`` (per-stage reports: ``name``,
    ``stage``, ``confidence``, ``ms``, ``tokens``, ``informative``), ``correct`` (the
    feedback label, bool), ``audit`` (bool: the decision was in the uniform audit sample, so
    its label is unbiased), ``audit_rate``, ``target_risk``, ``profile``, ``serving`` (the
    serving settings' fingerprint), and ``question``/``answer`` (None unless
    ``CANDOR_LOG_TEXT``).
    """
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=30.0)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT * FROM decisions WHERE label IS NOT NULL ORDER BY ts"
        ).fetchall()
    finally:
        conn.close()
    out = []
    for r in rows:
        d = dict(r)
        d["signals"] = json.loads(d["signals"] or "{}")
        d["stages"] = json.loads(d["stages"] or "[]")
        d["correct"] = bool(d.pop("label"))
        d["audit"] = bool(d.get("audit"))
        out.append(d)
    return out
