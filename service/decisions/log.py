"""The durable decision log: every cascade decision appended to a store (SQLite WAL, or a
PostgreSQL shared by replicas: ``store.py``), off the request path.

One writer thread owns the connection. Requests only put a row on a bounded queue
(``record`` never blocks; when the queue is full the row is dropped and counted,
the request is never slowed). Feedback goes through the same FIFO queue, so it
always lands after the decision it labels, and ``feedback`` resolves only after
its transaction is durably committed (SQLite ``synchronous=FULL``, PostgreSQL
``synchronous_commit=on``): an acknowledged label survives a kill -9 (and a power
cut). Decision rows still in the queue when the process is killed are lost; that loss is
bounded by the queue and documented.

No raw question or answer text is stored unless ``log_text`` is set. ``audit_counts`` and
``recent_decisions`` rebuild the live monitors at startup, ``audit_changes`` refreshes them
from a ``shared`` log (``monitoring/refresh.py``); ``table.labelled_entries`` recalibrates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from service import schemas
from service.calibration.pinning import ServingSettings, system_hash
from service.decisions.records import AuditCounts, AuditRead, LabelledDecision, RecentDecision
from service.decisions.store import DecisionStore, Label, redact
from service.decisions.table import COLUMNS, LABEL_COLUMNS, open_store
from service.errors import DeadlineExceeded, EngineUnavailable

log = logging.getLogger(__name__)

_BATCH = 512
_PRUNE_EVERY_S = 3600.0
_RETRY_S = 1.0  # pause after a failed write before the next batch


class DecisionLog:
    """Append-only decision log with a background writer. ``close`` flushes what is queued.

    ``url``: a SQLite path or ``sqlite:///...`` URL, or ``postgresql://...`` (shared by
    replicas). The writer never dies silently: a failed batch is logged, counted
    (``errors``, ``candor_decision_log_errors``), its decision rows are counted as dropped
    (``candor_decision_log_dropped``), its feedback answers 503, and ``healthy`` turns False
    (``/readyz`` says degraded) until a batch commits again.
    """

    def __init__(self, url: Path | str, *, log_text: bool = False, retention_days: int = 30,
                 max_queue: int = 10_000, metrics: Any = None,
                 unknown_grace_s: tuple[float, ...] | None = None) -> None:
        self.url = url
        self.log_text = log_text
        self.retention_s = retention_days * 86400.0
        self.dropped = 0
        self.written = 0
        self.errors = 0
        self.last_error: str | None = None
        self._metrics = metrics
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max_queue)
        self._store: DecisionStore = open_store(url, COLUMNS, LABEL_COLUMNS)
        # Shared store: the decision may still sit in the answering replica's queue when its
        # feedback reaches this one; look again a few times before saying 404.
        self.unknown_grace_s = unknown_grace_s if unknown_grace_s is not None else (
            (0.05, 0.2, 0.5, 1.0) if self._store.shared else ())
        self.prune()
        self._thread = threading.Thread(target=self._run, name="candor-decision-log",
                                        daemon=True)
        self._thread.start()

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    # -- read side (blocking: call from a worker thread) --------------------------------------
    @property
    def shared(self) -> bool:
        """Whether other replicas write here too (PostgreSQL): the live monitors then take
        their state from the log (``audit_changes``), refreshed periodically."""
        return self._store.shared

    def audit_counts(self, current_rate: float = 0.0) -> list[AuditCounts]:
        """Every promise's running sums, thinned to one audit rate
        (``DecisionStore.audit_counts``)."""
        return self._store.audit_counts(current_rate)

    def recent_decisions(self, calibration_id: str, limit: int) -> list[RecentDecision]:
        """The last ``limit`` decisions of one artifact, oldest first (the drift window)."""
        return self._store.recent_decisions(calibration_id, limit)

    def audit_changes(self, since: str | None) -> AuditRead:
        """A shared log: what was committed since the read that returned ``since``."""
        return self._store.audit_changes(since)

    # -- request side (event loop) -----------------------------------------------------------
    def record(self, resp: schemas.AnswerResponse, req: schemas.AnswerRequest,
               endpoint: str, serving: ServingSettings | None = None,
               max_tokens: int | None = None) -> None:
        """Queue one decision; never blocks (a full queue drops the row and counts it).
        ``serving`` and ``max_tokens`` (the plan's) are the decision's serving settings,
        which ``calibrate --from-log`` pins its artifact to."""
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
            "audit": int(resp.audit), "audit_rate": resp.audit_rate,
            "serving": None if serving is None else self._serving(serving, req, max_tokens),
            "scope": resp.scope.model_dump_json(),
            "claims": None if resp.claims is None else self._claims(resp.claims),
        }
        try:
            self._q.put_nowait(("decision", row))
        except queue.Full:
            self._drop(1)
            log.warning("decision log queue full; dropped %s (%d so far)", resp.id, self.dropped)

    def _claims(self, claims: schemas.ClaimsReport) -> str:
        """Claims mode's report as logged: the claims' texts (and the kept answer) only with
        ``log_text``; spans, parts, confidences, signals and what was kept always."""
        if self.log_text:
            return claims.model_dump_json()
        return claims.model_dump_json(exclude={"answer": True,
                                               "items": {"__all__": {"text"}}})

    def _serving(self, serving: ServingSettings, req: schemas.AnswerRequest,
                 max_tokens: int | None) -> str:
        """One decision's serving settings as logged; a system prompt is kept only as a
        hash unless ``log_text`` is set."""
        system = req.system
        if system and not self.log_text:
            system = system_hash(system)
        return json.dumps({**serving.model_dump(), "system_prompt": system or None,
                           "answer_max_tokens": max_tokens})

    async def feedback(self, answer_id: str, correct: bool, labeller: str = "anonymous",
                       timeout_s: float = 30.0) -> LabelledDecision | None:
        """Label a logged decision once committed (``labeller``: who sent it, recorded with
        it): the labelled row (its audit draw and the promise it carried, for live
        monitoring), or None when the id is unknown."""
        label = (answer_id, correct, labeller)
        for pause in (*self.unknown_grace_s, None):
            labelled = await self._feedback_once(label, timeout_s)
            if labelled is not None or pause is None:
                return labelled
            await asyncio.sleep(pause)
        return None  # pragma: no cover - the loop always returns

    async def _feedback_once(self, label: Label,
                             timeout_s: float) -> LabelledDecision | None:
        fut: concurrent.futures.Future[LabelledDecision | None] = concurrent.futures.Future()
        await asyncio.to_thread(self._q.put, ("feedback", (label, fut)))
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
            ok = self._write([item for item in batch if item[0] != "stop"])
            if ok and time.monotonic() - last_prune > _PRUNE_EVERY_S:
                self._guarded(self.prune)
                last_prune = time.monotonic()
            if stop:
                return
            if not ok:
                time.sleep(_RETRY_S)

    def _write(self, batch: list[tuple[str, Any]]) -> bool:
        if not batch:
            return True
        rows = [item for kind, item in batch if kind == "decision"]
        labels = [item for kind, item in batch if kind == "feedback"]
        try:
            results = self._store.write(rows, [label for label, _ in labels])
        except Exception as exc:  # noqa: BLE001 - counted, surfaced, and the writer lives on
            self._fail(exc, len(rows))
            for _, fut in labels:
                _settle(fut, EngineUnavailable(
                    "the decision log cannot store the label right now; retry",
                    headers={"Retry-After": "5"}))
            return False
        self.written += len(rows)
        self.last_error = None
        for (_, fut), labelled in zip(labels, results, strict=True):
            _settle(fut, labelled)
        return True

    def _fail(self, exc: Exception, rows: int) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self._metrics is not None:
            self._metrics.decision_log_errors.inc()
        self._drop(rows)
        log.error("decision log write to %s failed (%d rows dropped): %s",
                  redact(self.url), rows, self.last_error)

    def _drop(self, n: int) -> None:
        self.dropped += n
        if self._metrics is not None and n:
            self._metrics.decision_log_dropped.inc(n)

    def _guarded(self, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            self._fail(exc, 0)

    def prune(self) -> int:
        """Delete decisions older than the retention window; returns how many went."""
        n = self._store.prune(time.time() - self.retention_s)
        if n:
            log.info("decision log: pruned %d entries older than the retention window", n)
        return n

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush the queue, stop the writer and close the connection."""
        if self._thread.is_alive():
            self._q.put(("stop", None))
            self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._store.close()


def _settle(fut: concurrent.futures.Future[LabelledDecision | None],
            outcome: LabelledDecision | None | BaseException) -> None:
    """Resolve a feedback future unless its waiter gave up (cancelled) already."""
    try:
        if isinstance(outcome, BaseException):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)
    except concurrent.futures.InvalidStateError:
        pass
