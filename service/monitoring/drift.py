"""Drift of the inputs without labels: a sliding window of recent decisions vs the
calibration set's reference (``calibration/reference.py``, stored in the artifact).

Statistic: the population stability index over the reference's bins,

    PSI = sum_i (p_i - q_i) * ln(p_i / q_i),

p = the window's share per bin, q = the reference's, both smoothed with half a count per
bin (so an empty bin is finite). Two PSIs: the stage-0 confidence (quantile bins of the
reference: equal reference mass per bin) and the stage mix (where the default policy
stopped, one bin per stage). The usual reading, adopted here: < 0.1 stable, 0.1-0.25
moderate, > 0.25 a real shift (``DRIFT_THRESHOLD``; the ``CandorConfidenceDrift`` alert).
Without drift the PSI of k bins is about (k - 1)(1/W + 1/m) for a window of W decisions and
a reference of m, so the window must be large enough for that to sit well below 0.25.

Window: the last ``size`` decisions of the active artifact (``CANDOR_DRIFT_WINDOW``,
default 500); a PSI is reported once the window holds at least half of that. Each
decision updates the counts in O(1) (a deque of bin indices).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.calibration.reference import DriftReference
from service.cascade.stages import N_STAGES

DRIFT_THRESHOLD = 0.25
DEFAULT_WINDOW = 500


def psi(counts: Sequence[float], reference: Sequence[float], n_reference: int) -> float:
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

    def __post_init__(self) -> None:
        self.confidence = _Hist(self.size, len(self.reference.confidence_edges) + 1)
        self.stages = _Hist(self.size, N_STAGES)

    def observe(self, stage0_confidence: float | None, stage: int | None) -> None:
        """One decision: its stage-0 confidence, and where it stopped when it carried the
        default promise (None otherwise: other policies stop elsewhere by design)."""
        if stage0_confidence is not None:
            edges = self.reference.confidence_edges
            self.confidence.add(int(np.searchsorted(edges, stage0_confidence, side="right")))
        if stage is not None and 0 <= stage < N_STAGES:
            self.stages.add(stage)

    def _psi(self, h: _Hist, ref: Sequence[float] | None) -> float | None:
        if ref is None or len(h.items) < max(1, self.size // 2):
            return None
        return psi(h.counts, ref, self.reference.n)

    def report(self) -> dict[str, Any]:
        conf = self._psi(self.confidence, self.reference.confidence_fractions)
        mix = self._psi(self.stages, self.reference.stage_mix)
        n = len(self.confidence.items)
        return {
            "statistic": "psi", "threshold": self.threshold, "window": self.size,
            "confidence": {"psi": conf, "n": n, "drift": conf is not None and conf > self.threshold,
                           "window_shares": (self.confidence.counts / max(1, n)).tolist(),
                           "reference_shares": self.reference.confidence_fractions,
                           "edges": self.reference.confidence_edges},
            "stage_mix": {"psi": mix, "n": len(self.stages.items),
                          "drift": mix is not None and mix > self.threshold,
                          "window_shares": (self.stages.counts
                                            / max(1, len(self.stages.items))).tolist(),
                          "reference_shares": self.reference.stage_mix},
            "reference_n": self.reference.n,
        }
