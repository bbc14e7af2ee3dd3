"""Raw signals as confidence-oriented scores (one direction table for report and plots)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.calibration.records import Record
from service.labelled import quality
from service.vocab import DIRECTIONS  # signal -> direction (+1: higher = more confident)


def signal_scores(records: Sequence[Record], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(confidence-oriented score, correct) over the records that have the signal."""
    rows = [r for r in records if name in r.signals]
    s = np.array([DIRECTIONS[name] * r.signals[name] for r in rows], dtype=float)
    return s, np.array([r.correct for r in rows], dtype=bool)


def signal_aurocs(records: Sequence[Record]) -> dict[str, dict[str, Any]]:
    out = {}
    for name in DIRECTIONS:
        s, y = signal_scores(records, name)
        if len(s):
            out[name] = {"auroc": quality.auroc(s, y), "n": len(s)}
    return out
