"""Which inputs a stage's map gets, chosen on the fit split so calibration never ranks worse.

A stage's map over all its cumulative signals can rank worse than one of them alone
(few examples, many weak or collinear features) or than the previous stage's map.
For each stage the candidates are compared by out-of-fold AUROC on the fit split
(stratified k-fold, the sign-constrained logistic regression of ``fit.py``):

* ``all``: every cumulative feature of the stage;
* each single signal with a known direction (``DIRECTIONS``): its raw value, no fitting;
* ``inherit``: the previous stage's chosen inputs (the map then stays the previous
  stage's: ``None`` in the artifact).

The best candidate wins (ties: the simpler one), but a stage keeps the previous
stage's map unless its best candidate beats it by ``MARGIN``. Only fit-split labels are used, so
Learn-then-Test on the test split keeps its guarantee whatever is chosen.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.calibration.fit import signed_oof
from service.labelled.quality import auroc
from service.vocab import DIRECTIONS

INHERIT = "inherit"
# A stage's own map must beat the previous stage's inputs by this much out of fold: with
# a dozen candidates, the best of them wins some AUROC by luck alone.
MARGIN = 0.02


@dataclass(frozen=True)
class Selection:
    choice: str  # "all", a signal name, or "inherit"
    features: list[str] | None  # the map's inputs; None: inherit the previous map
    scores: dict[str, float]  # candidate -> out-of-fold AUROC on the fit split


def _prepared(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # an all-missing column has no median: it becomes 0
        warnings.simplefilter("ignore", RuntimeWarning)
        fill = np.nan_to_num(np.nanmedian(x, axis=0), nan=0.0)
    xf = np.where(np.isnan(x), fill, x)
    scale = xf.std(0)
    return np.asarray((xf - xf.mean(0)) / np.where(scale < 1e-9, 1.0, scale), dtype=float)


def oof_auroc(x: np.ndarray, y: np.ndarray, names: list[str], folds: int,
              seed: int) -> float | None:
    if x.shape[1] == 0:
        return None
    return auroc(signed_oof(_prepared(x), y, names, folds, seed), y)


def choose_inputs(x: np.ndarray, y: np.ndarray, names: Sequence[str],
                  previous: Sequence[str] | None, seed: int = 0,
                  margin: float = MARGIN) -> Selection:
    """Pick the stage's map inputs by out-of-fold AUROC (see the module docstring)."""
    names = list(names)
    pos = int(y.sum())
    folds = min(5, pos, len(y) - pos)
    if folds < 2:  # too few of one class to compare: keep every input
        return Selection("all", names, {})
    scores: dict[str, float] = {}
    full = oof_auroc(x, y, names, folds, seed)
    if full is not None:
        scores["all"] = full
    for j, name in enumerate(names):
        col = x[:, j]
        if name in DIRECTIONS and np.isfinite(col).sum() == len(col) and np.ptp(col) > 0:
            a = auroc(DIRECTIONS[name] * col, y)
            if a is not None:
                scores[name] = a
    if previous:
        idx = [names.index(f) for f in previous if f in names]
        prev = oof_auroc(x[:, idx], y, [names[i] for i in idx], folds, seed) if idx else None
        if prev is not None:
            scores[INHERIT] = prev
    if not scores:
        return Selection("all", names, {})
    order = {"all": 2, INHERIT: 0}  # ties: inherit, then a single signal, then all
    best = max(scores, key=lambda k: (round(scores[k], 4), -order.get(k, 1)))
    if INHERIT in scores and scores[best] < scores[INHERIT] + margin:
        best = INHERIT  # a new stage must rank clearly better, not by selection luck
    if best == "all":
        return Selection(best, names, scores)
    if best == INHERIT:
        return Selection(best, None, scores)
    return Selection(best, [best], scores)
