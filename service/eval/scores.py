"""Raw signals as confidence-oriented scores (one direction table for report and plots)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.calibration.records import Record
from service.cascade.stages import DIRECTIONS
from service.labelled import metrics

SIGNALS = DIRECTIONS  # signal -> direction (+1: higher = more confident)
SAMPLING = ("consistency", "n_clusters", "semantic_entropy", "mean_similarity")


def signal_scores(records: Sequence[Record], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(confidence-oriented score, correct) over the records that have the signal."""
    rows = [r for r in records if name in r.signals]
    s = np.array([SIGNALS[name] * r.signals[name] for r in rows], dtype=float)
    return s, np.array([r.correct for r in rows], dtype=bool)


def signal_aurocs(records: Sequence[Record]) -> dict[str, dict[str, Any]]:
    out = {}
    for name in SIGNALS:
        s, y = signal_scores(records, name)
        if len(s):
            out[name] = {"auroc": metrics.auroc(s, y), "n": len(s)}
    return out
