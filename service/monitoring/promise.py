"""One promise watched live: "error rate among answered <= alpha", on audited decisions.

A ``PromiseMonitor`` belongs to one (profile, artifact id, target risk). It keeps running
sums only (O(1) per event):

- audited decisions that carried this promise, and how many of them abstained (no label
  needed: the realised abstention rate, compared with the calibration's held-out one);
- labelled *answered* audited decisions and how many were wrong: the realised risk, with
  the anytime-valid confidence sequence of ``confseq.bernoulli_cs``.

Audited decisions are a uniform random sample of all decisions (drawn by the server alone,
thinned to one rate when the rate changed between restarts: ``service/audit.py``), so
their labels are an unbiased sample of the answered ones' errors (docs/calibration.md,
"Audit sampling").

Verdicts (``verdict``):

- ``breached``: the sequence's lower bound exceeds alpha. Evidence, not noise: under a
  kept promise this happens, ever, with probability <= ``level`` (checked after every label).
- ``unverified``: otherwise, while fewer than ``min_labels`` answered audited decisions are
  labelled (the sequence is too wide to tell a kept promise from a broken one).
- ``holding``: otherwise: enough labels and no evidence of a breach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.monitoring.confseq import DEFAULT_T_OPT, bernoulli_cs
from service.vocab import Verdict

DEFAULT_LEVEL = 0.05
DEFAULT_MIN_LABELS = 100


@dataclass(frozen=True)
class PromiseKey:
    profile: str
    calibration_id: str
    target_risk: float


@dataclass
class PromiseMonitor:
    key: PromiseKey
    level: float = DEFAULT_LEVEL
    min_labels: int = DEFAULT_MIN_LABELS
    t_opt: float = DEFAULT_T_OPT
    expected_abstention: float | None = None  # 1 - held-out coverage at this target risk
    common_rate: float | None = None  # the audit rate its sample is thinned to (service/audit.py)
    decisions: int = 0  # audited decisions with this promise
    abstained: int = 0
    labelled: int = 0  # labelled answered audited decisions
    errors: int = 0

    # -- events (each O(1)) ------------------------------------------------------------------
    def observe_decision(self, abstained: bool) -> None:
        self.decisions += 1
        self.abstained += int(abstained)

    def observe_label(self, correct: bool, previous: bool | None = None) -> None:
        """One label of an answered audited decision; ``previous`` is the label it replaces
        (a decision relabelled counts once, with its latest label)."""
        if previous is None:
            self.labelled += 1
        else:
            self.errors -= int(not previous)
        self.errors += int(not correct)

    # -- read side ---------------------------------------------------------------------------
    def bounds(self) -> tuple[float, float]:
        lo, hi = bernoulli_cs(self.errors, self.labelled, self.level, self.t_opt)
        return float(lo), float(hi)

    @property
    def estimate(self) -> float | None:
        return self.errors / self.labelled if self.labelled else None

    @property
    def verdict(self) -> Verdict:
        lower, _ = self.bounds()
        if self.labelled and lower > self.key.target_risk:
            return "breached"
        return "unverified" if self.labelled < self.min_labels else "holding"

    def abstention(self) -> dict[str, Any]:
        """The realised abstention rate of audited decisions vs the calibration's, with the
        same anytime-valid sequence around it."""
        lo, hi = bernoulli_cs(self.abstained, self.decisions, self.level, self.t_opt)
        return {"decisions": self.decisions, "abstained": self.abstained,
                "rate": self.abstained / self.decisions if self.decisions else None,
                "lower": float(lo), "upper": float(hi), "expected": self.expected_abstention}

    def report(self) -> dict[str, Any]:
        lower, upper = self.bounds()
        return {"target_risk": self.key.target_risk, "verdict": self.verdict,
                "labelled": self.labelled, "errors": self.errors, "estimate": self.estimate,
                "lower": lower, "upper": upper, "level": self.level,
                "min_labels": self.min_labels, "abstention": self.abstention()}
