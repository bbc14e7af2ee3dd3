"""Which raw signals each stage's calibration map reads, and how they are prepared.

Stage ``k``'s map sees every signal of stages ``0..k`` (the runner's cumulative
``Trace.features``). Lengths enter as ``log1p``; a missing value (a signal that
did not run, e.g. ``context_support`` without a context) takes the fit data's
median, stored in the map.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from service.vocab import STAGES

STAGE_SIGNALS: tuple[tuple[str, ...], ...] = tuple(s.signals for s in STAGES)
LOG_FEATURES = frozenset({"n_tokens", "n_clusters"})


def stage_features(stage: int) -> tuple[str, ...]:
    """The feature names stage ``stage``'s map reads (cumulative)."""
    return tuple(f for s in STAGE_SIGNALS[: stage + 1] for f in s)


def feature_of_signal(name: str) -> int | None:
    for k, names in enumerate(STAGE_SIGNALS):
        if name in names:
            return k
    return None


def vectorise(features: Mapping[str, float | bool | None], names: Sequence[str]) -> list[float]:
    """Raw values in ``names`` order; NaN where missing (imputed by the map)."""
    out = []
    for n in names:
        v = features.get(n)
        if v is None or not math.isfinite(float(v)):
            out.append(math.nan)
        else:
            x = float(v)
            out.append(math.log1p(max(x, 0.0)) if n in LOG_FEATURES else x)
    return out
