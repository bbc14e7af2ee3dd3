"""All live monitors of a server, keyed by (profile, artifact id[, target risk]).

``Monitoring`` is fed by the request path (every decision: ``observe_decision``) and the
feedback path (every committed label: ``observe_label``), and rebuilt from the decision
log at startup (``restore``, from ``DecisionLog.audit_counts`` and ``recent_decisions``),
so a restart loses nothing that was committed. Behind a log shared by replicas
(``from_log``) it counts nothing itself: ``refresh.py`` sets it from the log, which holds
every replica's decisions and labels (this one's included). Promise monitors are kept for
every artifact seen (labels on decisions of a replaced artifact still count for it);
gauges and drift cover the active artifact of each profile.
Everything runs on the event loop and is O(1) per event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from service import schemas
from service.audit import common_rate, kept
from service.decisions.records import AuditCounts, LabelledDecision, RecentDecision
from service.metrics import Metrics
from service.monitoring.drift import DEFAULT_WINDOW, DriftMonitor
from service.monitoring.promise import (
    DEFAULT_LEVEL,
    DEFAULT_MIN_LABELS,
    PromiseKey,
    PromiseMonitor,
)
from service.vocab import Verdict


@dataclass
class Active:
    """The artifact a profile serves now, as monitoring needs it."""

    profile: str
    calibration_id: str
    default_target_risk: float | None
    expected_abstention: dict[float, float]
    drift: DriftMonitor | None


def active_from_model(model: object, window: int) -> Active | None:
    """The monitoring view of a loaded ``CalibratedModel`` (None: uncalibrated)."""
    spec = getattr(model, "spec", None)
    if spec is None or not getattr(model, "calibrated", False):
        return None
    expected = {float(r["alpha"]): 1.0 - float(r["coverage"])
                for r in spec.heldout.get("risk", []) if "coverage" in r}
    drift = DriftMonitor(spec.reference, size=window) if spec.reference is not None else None
    return Active(spec.profile, spec.id, getattr(model, "default_target_risk", None),
                  expected, drift)


@dataclass
class Monitoring:
    metrics: Metrics
    audit_rate: float = 0.0  # the server's (CANDOR_AUDIT_RATE): new promises thin to it
    level: float = DEFAULT_LEVEL
    min_labels: int = DEFAULT_MIN_LABELS
    window: int = DEFAULT_WINDOW
    promises: dict[PromiseKey, PromiseMonitor] = field(default_factory=dict)
    active: dict[str, Active] = field(default_factory=dict)
    from_log: bool = False  # a shared log: state from ``restore`` only, never from events

    # -- artifacts ---------------------------------------------------------------------------
    def activate(self, models: Iterable[object]) -> None:
        """Make ``models`` the profiles' active artifacts (startup and every reload)."""
        acts = [a for a in (active_from_model(m, self.window) for m in models) if a is not None]
        for act in acts:
            prev = self.active.get(act.profile)
            if prev is not None and prev.calibration_id == act.calibration_id:
                act.drift = prev.drift  # the same artifact re-read: its window goes on
        self.active = {act.profile: act for act in acts}
        for act in acts:
            if act.default_target_risk is not None:
                self._promise(act.profile, act.calibration_id, act.default_target_risk)
        self.publish()

    def _promise(self, profile: str, cal_id: str, target_risk: float) -> PromiseMonitor:
        key = PromiseKey(profile, cal_id, round(float(target_risk), 6))
        mon = self.promises.get(key)
        if mon is None:
            act = self.active.get(profile)
            expected = (act.expected_abstention.get(key.target_risk)
                        if act is not None and act.calibration_id == cal_id else None)
            mon = self.promises[key] = PromiseMonitor(
                key, self.level, self.min_labels, expected_abstention=expected,
                common_rate=common_rate([self.audit_rate]))
        return mon

    def _is_active(self, key: PromiseKey) -> bool:
        act = self.active.get(key.profile)
        return act is not None and act.calibration_id == key.calibration_id

    # -- events ------------------------------------------------------------------------------
    def observe_decision(self, resp: schemas.AnswerResponse) -> None:
        cal = resp.calibration
        if self.from_log or cal.id is None or cal.profile is None:
            return
        if resp.audit and cal.target_risk is not None:
            mon = self._promise(cal.profile, cal.id, cal.target_risk)
            if mon.common_rate is None or 0 < resp.audit_rate < mon.common_rate:
                # auditing off (CANDOR_AUDIT_RATE=0): an admin's rate sets the sample; a
                # lower one thins what comes next (and everything at the next restart)
                mon.common_rate = resp.audit_rate
            if kept(resp.id, resp.audit_rate, mon.common_rate):
                mon.observe_decision(resp.abstained)
                self._publish_one(mon)
        act = self.active.get(cal.profile)
        if act is not None and act.calibration_id == cal.id and act.drift is not None:
            conf0 = next((s.confidence for s in resp.stages if s.stage == 0), None)
            default = (cal.target_risk is not None and act.default_target_risk is not None
                       and abs(cal.target_risk - act.default_target_risk) < 1e-9)
            act.drift.observe(conf0, resp.stage_reached if default else None,
                              resp.signals.model_dump())
            self.metrics.publish_drift(act.profile, act.calibration_id, act.drift.report())

    def observe_label(self, row: LabelledDecision) -> None:
        """A committed label: counts when it is an answered audited decision with a promise,
        kept in the monitor's uniform sample (``service/audit.py``)."""
        if self.from_log or not (row.audit and row.decision == "answer"
                                 and row.target_risk is not None
                                 and row.calibration_id and row.profile):
            return
        mon = self._promise(row.profile, row.calibration_id, row.target_risk)
        if kept(row.id, row.audit_rate, mon.common_rate):
            mon.observe_label(row.correct, row.previous)
            self._publish_one(mon)

    def restore(self, counts: list[AuditCounts], recent: list[RecentDecision]) -> None:
        """Set from the decision log (``DecisionLog.audit_counts`` and
        ``recent_decisions``): the running sums of the promises in ``counts``, and every
        active artifact's drift window, replaced by its decisions in ``recent`` (oldest
        first)."""
        for c in counts:
            mon = self._promise(c.profile, c.calibration_id, c.target_risk)
            mon.common_rate = c.common_rate
            mon.decisions, mon.abstained = c.decisions, c.abstained
            mon.labelled, mon.errors = c.labelled, c.errors
        for current in self.active.values():
            if current.drift is not None:
                current.drift = replace(current.drift)  # the same reference, an empty window
        for d in recent:
            act = self.active.get(d.profile)
            if act is None or act.drift is None or act.calibration_id != d.calibration_id:
                continue
            default = (d.target_risk is not None and act.default_target_risk is not None
                       and abs(d.target_risk - act.default_target_risk) < 1e-9)
            act.drift.observe(d.stage0_confidence, d.stage_reached if default else None,
                              d.signals)
        self.publish()

    # -- read side ---------------------------------------------------------------------------
    def _publish_one(self, mon: PromiseMonitor) -> None:
        if self._is_active(mon.key):
            self.metrics.publish_promise(mon.key.profile, mon.key.calibration_id, mon.report())

    def publish(self) -> None:
        self.metrics.clear_monitoring()
        for mon in self.promises.values():
            self._publish_one(mon)
        for act in self.active.values():
            if act.drift is not None:
                self.metrics.publish_drift(act.profile, act.calibration_id, act.drift.report())

    def report(self) -> list[dict[str, Any]]:
        """Per (profile, artifact id): the promises watched, the verdict, drift."""
        groups: dict[tuple[str, str], list[PromiseMonitor]] = {}
        for mon in self.promises.values():
            groups.setdefault((mon.key.profile, mon.key.calibration_id), []).append(mon)
        for act in self.active.values():
            groups.setdefault((act.profile, act.calibration_id), [])
        out = []
        for (profile, cal_id), mons in sorted(groups.items(), key=lambda kv: kv[0]):
            current = self.active.get(profile)
            is_active = current is not None and current.calibration_id == cal_id
            default = current.default_target_risk if is_active and current is not None else None
            reports = [m.report() for m in sorted(mons, key=lambda m: m.key.target_risk)]
            main = next((r for r in reports if default is not None
                         and abs(r["target_risk"] - default) < 1e-9), None)
            out.append({
                "profile": profile, "calibration_id": cal_id, "active": is_active,
                "target_risk": default, "verdict": profile_verdict(reports, main),
                **({k: main[k] for k in ("labelled", "errors", "estimate", "lower", "upper",
                                         "level", "min_labels")} if main else {}),
                "promises": reports,
                "drift": (current.drift.report() if is_active and current is not None
                          and current.drift is not None else None),
            })
        return out


def profile_verdict(reports: list[dict[str, Any]], main: dict[str, Any] | None) -> Verdict:
    """``breached`` when any watched target risk is breached, else the default one's."""
    if any(r["verdict"] == "breached" for r in reports):
        return "breached"
    return main["verdict"] if main is not None else "unverified"
