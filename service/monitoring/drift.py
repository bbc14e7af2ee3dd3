"""Drift of the inputs without labels: a sliding window of recent decisions vs the
calibration set's reference (``calibration/reference.py``, stored in the artifact).

Statistic: the population stability index over the reference's bins,

    PSI = sum_i (p_i - q_i) * ln(p_i / q_i),

p = the window's share per bin, q = the reference's, both smoothed with half a count per
bin (so an empty bin is finite). PSIs of: the stage-0 confidence (quantile bins of the
reference: equal reference mass per bin), each raw stage-0 signal (the same; a flat map's
confidence cannot move, its inputs can: ``reference.py``), and the stage mix (where the
default policy stopped, one bin per stage). ``drift`` is true when the confidence or any
raw signal is past the threshold (the stage mix alone moves with the policy as well).
The usual reading, adopted here: < 0.1 stable, 0.1-0.25
moderate, > 0.25 a real shift (``DRIFT_THRESHOLD``; the ``CandorConfidenceDrift`` alert).
Without drift the PSI of k bins is about (k - 1)(1/W + 1/m) for a window of W decisions and
a reference of m, so the window must be large enough for that to sit well below 0.25.

Window: the last ``size`` decisions of the active artifact (``CANDOR_DRIFT_WINDOW``,
default 500); a PSI is reported once the window holds at least half of that. Each
decision updates the counts in O(1) (a deque of bin indices).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.calibration.reference import DriftReference
from service.vocab import N_STAGES

DRIFT_THRESHOLD = 0.25
DEFAULT_WINDOW = 500


def psi(counts: Sequence[float] | np.ndarray, reference: Sequence[float],
        n_reference: int) -> float:
    """PSI of window ``counts`` against reference shares (half-count smoothing on both)."""
    c = np.asarray(counts, dtype=float)
    k = len(c)
    p = (c + 0.5) / (c.sum() + 0.5 * k)
    q = (np.asarray(reference, dtype=float) * n_reference + 0.5) / (n_reference + 0.5 * k)
    return float(np.sum((p - q) * np.log(p / q)))


@dataclass
class _Hist:
    """Counts over the last ``size`` bin indices."""

    size: int
    k: int
    items: deque[int] = field(default_factory=deque)
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.counts = np.zeros(self.k, dtype=np.int64)

    def add(self, i: int) -> None:
        self.items.append(i)
        self.counts[i] += 1
        if len(self.items) > self.size:
            self.counts[self.items.popleft()] -= 1


@dataclass
class DriftMonitor:
    reference: DriftReference
    size: int = DEFAULT_WINDOW
    threshold: float = DRIFT_THRESHOLD
    confidence: _Hist = field(init=False)
    stages: _Hist = field(init=False)
    signals: dict[str, _Hist] = field(init=False)

    def __post_init__(self) -> None:
        self.confidence = _Hist(self.size, len(self.reference.confidence_edges) + 1)
        self.stages = _Hist(self.size, N_STAGES)
        self.signals = {name: _Hist(self.size, len(b.edges) + 1)
                        for name, b in self.reference.signals.items()}

    def observe(self, stage0_confidence: float | None, stage: int | None,
                signals: Mapping[str, float | None] | None = None) -> None:
        """One decision: its stage-0 confidence, where it stopped when it carried the
        default promise (None otherwise: other policies stop elsewhere by design), and its
        raw stage-0 signals."""
        if stage0_confidence is not None:
            edges = self.reference.confidence_edges
            self.confidence.add(int(np.searchsorted(edges, stage0_confidence, side="right")))
        if stage is not None and 0 <= stage < N_STAGES:
            self.stages.add(stage)
        for name, h in self.signals.items():
            v = (signals or {}).get(name)
            if v is not None and np.isfinite(v):
                edges = self.reference.signals[name].edges
                h.add(int(np.searchsorted(edges, float(v), side="right")))

    def _entry(self, h: _Hist, ref: Sequence[float] | None) -> dict[str, Any]:
        n = len(h.items)
        value = None if ref is None or n < max(1, self.size // 2) else psi(
            h.counts, ref, self.reference.n)
        return {"psi": value, "n": n, "drift": value is not None and value > self.threshold,
                "window_shares": (h.counts / max(1, n)).tolist(), "reference_shares": ref}

    def report(self) -> dict[str, Any]:
        conf = {**self._entry(self.confidence, self.reference.confidence_fractions),
                "edges": self.reference.confidence_edges}
        signals = {name: {**self._entry(h, self.reference.signals[name].fractions),
                          "edges": self.reference.signals[name].edges}
                   for name, h in self.signals.items()}
        mix = self._entry(self.stages, self.reference.stage_mix)
        return {
            "statistic": "psi", "threshold": self.threshold, "window": self.size,
            "drift": conf["drift"] or mix["drift"] or any(e["drift"] for e in signals.values()),
            "confidence": conf, "signals": signals, "stage_mix": mix,
            "reference_n": self.reference.n,
        }
