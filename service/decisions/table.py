"""The decisions table: its columns, the store a URL opens, and read-only reads for tools.

``open_store(url)``: ``sqlite:///path`` (or a bare path; the embedded default) or
``postgresql://...`` (psycopg 3; shared by every replica). ``labelled_entries`` is the
read side for recalibration (``candor calibrate --from-log``); ``audit_counts`` rebuilds
the live monitors' sums of a SQLite log (``DecisionLog.audit_counts``, read-only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.decisions.postgres import PostgresStore
from service.decisions.records import AuditCounts
from service.decisions.sqlite import SqliteStore
from service.decisions.store import DecisionStore

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
    ("scope", "TEXT"),  # JSON: the scope test's report (schemas.ScopeReport)
    ("claims", "TEXT"),  # JSON: claims mode's report (schemas.ClaimsReport; texts if log_text)
    ("label", "INTEGER"), ("label_ts", "REAL"),
    ("labeller", "TEXT"),  # who sent the label: "key:<fingerprint>" or "anonymous"
)
LABEL_COLUMNS = ("label", "label_ts", "labeller")
SCHEMA = (  # the SQLite form, for tools and tests that build a log by hand
    "CREATE TABLE IF NOT EXISTS decisions ("
    + ", ".join(f"{n} {t}" for n, t in COLUMNS) + ");\n"
    "CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts);\n"
)


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


def audit_counts(path: Path | str, current_rate: float = 0.0) -> list[AuditCounts]:
    """``DecisionLog.audit_counts`` of the SQLite log at ``path`` (read-only)."""
    store = open_store(path, COLUMNS, LABEL_COLUMNS, readonly=True)
    try:
        return store.audit_counts(current_rate)
    finally:
        store.close()


def labelled_entries(path: Path | str) -> list[dict[str, Any]]:
    """Labelled decisions for recalibration, oldest first.

    Each dict: ``id``, ``ts`` (unix seconds), ``model``, ``calibration_id``, ``decision``,
    ``reason``, ``confidence``, ``stage_reached``, ``signals`` (the response's raw signal
    values, e.g. ``mean_nll``, ``consistency``), ``stages`` (per-stage reports: ``name``,
    ``stage``, ``confidence``, ``ms``, ``tokens``, ``informative``), ``correct`` (the
    feedback label, bool), ``audit`` (bool: the decision was in the uniform audit sample, so
    its label is unbiased), ``audit_rate``, ``labeller`` (who sent the label),
    ``target_risk``, ``profile``, ``serving`` (the serving settings' fingerprint),
    ``scope`` and ``claims`` (JSON text: the scope report; claims mode's report, None
    outside claims mode, its texts only with ``CANDOR_LOG_TEXT``), and
    ``question``/``answer`` (None unless ``CANDOR_LOG_TEXT``).
    """
    store = open_store(path, COLUMNS, LABEL_COLUMNS, readonly=True)
    try:
        rows = store.labelled()
    finally:
        store.close()
    out = []
    for d in rows:
        d["signals"] = json.loads(d["signals"] or "{}")
        d["stages"] = json.loads(d["stages"] or "[]")
        d["correct"] = bool(d.pop("label"))
        d["audit"] = bool(d.get("audit"))
        out.append(d)
    return out
