"""Rebuild the live monitors from the SQLite decision log at startup (read-only).

SQLite only (a PostgreSQL log is shared by replicas; each replica's monitors then start
empty and count what it sees). Two reads: the running sums of every promise (audited
decisions with a target risk, per profile, artifact id and target risk: decisions,
abstentions, labelled answered, wrong answered), thinned to the lowest audit rate the
promise's decisions were served at (``service/audit.py``: a uniform sample even when the
rate changed between restarts), and the last ``limit`` decisions of the active artifact
for the drift window. Only committed rows exist, which is what a restart can keep.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from service.audit import common_rate, kept


@dataclass(frozen=True)
class AuditCounts:
    profile: str
    calibration_id: str
    target_risk: float
    decisions: int
    abstained: int
    labelled: int
    errors: int
    common_rate: float | None  # the audit rate the counts are thinned to


@dataclass(frozen=True)
class RecentDecision:
    profile: str
    calibration_id: str
    target_risk: float | None
    stage_reached: int | None
    stage0_confidence: float | None
    signals: dict[str, float] | None = None  # the raw signals logged with it


_PROMISE = ("target_risk IS NOT NULL AND calibration_id IS NOT NULL "
            "AND profile IS NOT NULL")
_RATES = f"""
SELECT profile, calibration_id, target_risk, MIN(audit_rate) FROM decisions
WHERE {_PROMISE} AND audit_rate > 0 GROUP BY profile, calibration_id, target_risk
"""
_AUDITED = f"""
SELECT profile, calibration_id, target_risk, id, audit_rate, decision, label
FROM decisions WHERE audit = 1 AND {_PROMISE}
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


def audit_counts(path: Path, current_rate: float = 0.0) -> list[AuditCounts]:
    """Each promise's sums over its audited decisions, thinned to the lowest positive audit
    rate among its decisions and ``current_rate`` (the server's, for what comes next)."""
    conn = _connect(path)
    if conn is None:
        return []
    try:
        lowest = {(p, c, float(t)): r for p, c, t, r in conn.execute(_RATES)}
        audited = conn.execute(_AUDITED).fetchall()
    finally:
        conn.close()
    sums: dict[tuple[str, str, float], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    common = {key: common_rate([rate, current_rate]) for key, rate in lowest.items()}
    for p, c, t, rid, rate, decision, label in audited:
        key = (p, c, float(t))
        if not kept(rid, rate, common.get(key)):
            continue
        s = sums[key]
        s[0] += 1
        s[1] += decision == "abstain"
        s[2] += decision == "answer" and label is not None
        s[3] += decision == "answer" and label == 0
    return [AuditCounts(p, c, t, n, a, lab, e, common[(p, c, t)])
            for (p, c, t) in sorted(common) for n, a, lab, e in [sums[(p, c, t)]]]


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
