"""What the decision log hands the rest of the server, as records.

The one home of these shapes, below both their producer (a store, ``store.py``, builds
them from its rows) and their consumer (``monitoring/hub.py`` counts them):

- ``LabelledDecision``: a committed label and the decision it labelled (the feedback
  path, ``DecisionLog.feedback``);
- ``AuditCounts``: one promise's running sums over its audited decisions, thinned to one
  audit rate (``thinned_counts``: the maths of ``service/audit.py``, pure; ``contribution``:
  one decision's share of them);
- ``AuditedRow`` and ``AuditRead``: audited decisions as read from the log, in full or (a
  shared log) those committed since the previous read (``monitoring/ledger.py`` sums them);
- ``RecentDecision``: one logged decision as the drift window needs it
  (``recent_decision``).

The last two are what a restart rebuilds the live monitors from (``DecisionLog.audit_counts``
and ``DecisionLog.recent_decisions``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from service.audit import common_rate, kept

# (profile, artifact id, target risk): one promise of the decision log
PromiseId = tuple[str, str, float]


@dataclass(frozen=True)
class LabelledDecision:
    """A committed label and the decision it labelled: the decision's audit draw and the
    promise it carried (what live monitoring needs), the label (``correct``) and
    ``previous``, the label it replaced (None: the decision's first)."""

    id: str
    audit: bool
    audit_rate: float | None
    decision: str | None
    target_risk: float | None
    calibration_id: str | None
    profile: str | None
    correct: bool
    previous: bool | None


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


class AuditedRow(NamedTuple):
    """One audited decision with a promise, as stored (``label``: 1 correct, 0 wrong,
    None unlabelled; ``ts``: when it was decided)."""

    profile: str
    calibration_id: str
    target_risk: float
    id: str
    audit_rate: float | None
    decision: str | None
    label: int | None
    ts: float

    @property
    def promise(self) -> PromiseId:
        return (self.profile, self.calibration_id, float(self.target_risk))


@dataclass(frozen=True)
class AuditRead:
    """One read of the audit sample: the lowest positive audit rate per promise among the
    decisions read (audited or not), the audited decisions read, and ``snapshot``, where
    the next read of a shared log starts (``PostgresStore.audit_changes``)."""

    lowest: dict[PromiseId, float]
    audited: list[AuditedRow]
    snapshot: str


Sums = tuple[int, int, int, int]  # decisions, abstained, labelled answered, wrong answered


def contribution(row: AuditedRow, common: float | None) -> Sums:
    """What one audited decision adds to its promise's sums when they are thinned to
    ``common`` (nothing when the thinning drops it: ``service/audit.py``)."""
    if not kept(row.id, row.audit_rate, common):
        return (0, 0, 0, 0)
    answered = row.decision == "answer"
    return (1, int(row.decision == "abstain"), int(answered and row.label is not None),
            int(answered and row.label == 0))


def thinned_counts(lowest: dict[PromiseId, float], audited: Iterable[AuditedRow],
                   current_rate: float = 0.0) -> list[AuditCounts]:
    """Each promise's sums over its audited decisions, thinned to the lowest positive audit
    rate among its decisions (``lowest``) and ``current_rate`` (the server's, for what
    comes next). ``audited``: every audited decision with a promise."""
    sums: dict[PromiseId, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    common = {key: common_rate([rate, current_rate]) for key, rate in lowest.items()}
    for row in audited:
        s = sums[row.promise]
        for i, v in enumerate(contribution(row, common.get(row.promise))):
            s[i] += v
    return [AuditCounts(p, c, t, n, a, lab, e, common[(p, c, t)])
            for (p, c, t) in sorted(common) for n, a, lab, e in [sums[(p, c, t)]]]


def recent_decision(profile: str, calibration_id: str, target_risk: float | None,
                    stage_reached: int | None, stages_json: str | None,
                    signals_json: str | None) -> RecentDecision:
    """One logged decision (its JSON columns as stored) as the drift window reads it."""
    return RecentDecision(profile, calibration_id, target_risk, stage_reached,
                          _stage0(stages_json), _signals(signals_json))


def _stage0(stages_json: str | None) -> float | None:
    try:
        stages: list[dict[str, Any]] = json.loads(stages_json or "[]")
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
