"""Rebuild the live monitors from the SQLite decision log at startup (read-only).

SQLite only (a PostgreSQL log is shared by replicas; each replica's monitors then start
empty and count what it sees). Two queries: the running sums of every promise (audited
decisions with a target risk, grouped by profile, artifact id and target risk: decisions,
abstentions, labelled answered, wrong answered), and the last ``limit`` decisions of the
active artifact for the drift window. Only committed rows exist, which is what a restart can keep.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class AuditCounts:
    profile: str
    calibration_id: str
    target_risk: float
    decisions: int
    abstained: int
    labelled: int
    errors: int


@dataclass(frozen=True)
class RecentDecision:
    profile: str
    calibration_id: str
    target_risk: float | None
    stage_reached: int | None
    stage0_confidence: float | None
    signals: dict[str, float] | None = None  # the raw signals logged with it


_COUNTS = """
SELECT profile, calibration_id, target_risk, COUNT(*),
       SUM(decision = 'abstain'),
       SUM(decision = 'answer' AND label IS NOT NULL),
       SUM(decision = 'answer' AND label = 0)
FROM decisions
WHERE audit = 1 AND target_risk IS NOT NULL AND calibration_id IS NOT NULL
      AND profile IS NOT NULL
GROUP BY profile, calibration_id, target_risk
"""
_RECENT = """
SELECT profile, calibration_id, target_risk, stage_reached, stages, signals FROM decisions
WHERE calibration_id = ? ORDER BY ts DESC LIMIT ?
"""


def sqlite_path(url: Path | str) -> Path | None:
    """The file of a SQLite decision log URL (``decision_store.open_store``'s forms), or None
    for another back end."""
    text = str(url)
    if text.startswith("sqlite:///"):
        return Path(text[len("sqlite:///"):])
    return None if "://" in text else Path(text)


def _connect(path: Path) -> sqlite3.Connection | None:
    if not Path(path).exists():
        return None
    return sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=30.0)


def audit_counts(path: Path) -> list[AuditCounts]:
    conn = _connect(path)
    if conn is None:
        return []
    try:
        rows = conn.execute(_COUNTS).fetchall()
    finally:
        conn.close()
    return [AuditCounts(p, c, float(t), int(n), int(a or 0), int(lab or 0), int(e or 0))
            for p, c, t, n, a, lab, e in rows]


def _stage0(stages_json: str | None) -> float | None:
    try:
        stages = json.loads(stages_json or "[]")
    except json.JSONDecodeError:
        return None
    for st in stages:
        if st.get("stage") == 0 and st.get("confidence") is not None:
            return float(st["confidence"])
    return None


def _signals(signals_json: str | None) -> dict[str, float] | None:
    try:
        raw = json.loads(signals_json or "{}")
    except json.JSONDecodeError:
        return None
    return {k: float(v) for k, v in raw.items() if isinstance(v, int | float)}


def recent_decisions(path: Path, calibration_id: str, limit: int) -> list[RecentDecision]:
    """The last ``limit`` decisions of one artifact, oldest first."""
    conn = _connect(path)
    if conn is None:
        return []
    try:
        rows = conn.execute(_RECENT, (calibration_id, limit)).fetchall()
    finally:
        conn.close()
    return [RecentDecision(p, c, t, s, _stage0(st), _signals(sg))
            for p, c, t, s, st, sg in reversed(rows)]
