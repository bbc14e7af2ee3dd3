"""Per-stage score -> P(correct) maps, fitted with scikit-learn, stored as plain JSON.

A map is a logistic regression over the stage's standardised inputs (for small n
this *is* Platt scaling of a linear score), with no signal of known direction
allowed to point backwards (``fit_signed``); with at least ``ISOTONIC_MIN_N``
examples its linear score is recalibrated by isotonic regression fitted on
out-of-fold scores, so the map is not optimistic about its own training data.
Nothing is pickled: a map is its feature names, medians, means, scales,
coefficients and isotonic knots
(``maps.py``, which the server imports without scikit-learn).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from service.calibration.maps import StageMap, constant_map
from service.vocab import DIRECTIONS

ISOTONIC_MIN_N = 150
MIN_PER_CLASS = 3


def fit_signed(z: np.ndarray, y: np.ndarray, features: list[str]) -> np.ndarray:
    """Logistic-regression coefficients (intercept last) in which no signal of known
    direction (``DIRECTIONS``) points the wrong way: such a column is dropped (its
    coefficient 0) and the rest refitted, until every sign agrees. On few examples a
    noisy signal can fit "backwards" by chance; a map must not learn that."""
    keep = list(range(z.shape[1]))
    while True:
        coef = np.zeros(z.shape[1] + 1)
        if not keep:
            coef[-1] = float(np.log((y.mean() + 1e-9) / (1 - y.mean() + 1e-9)))
            return coef
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(z[:, keep], y)
        coef[keep], coef[-1] = lr.coef_[0], lr.intercept_[0]
        wrong = [j for j in keep if DIRECTIONS.get(features[j], 0) * coef[j] < 0]
        if not wrong:
            return coef
        keep = [j for j in keep if j not in wrong]


def signed_oof(z: np.ndarray, y: np.ndarray, features: list[str], folds: int,
               seed: int = 0) -> np.ndarray:
    """Out-of-fold linear scores of ``fit_signed`` (stratified k-fold)."""
    out = np.zeros(len(y))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(z, y):
        coef = fit_signed(z[train], y[train], features)
        out[test] = z[test] @ coef[:-1] + coef[-1]
    return out


def fit_stage_map(x: np.ndarray, y: np.ndarray, features: list[str],
                  seed: int = 0, isotonic: bool = True) -> StageMap | None:
    """Fit one stage's map; None when the data cannot support one (too few examples).
    ``isotonic`` False keeps Platt scaling at any n (strictly monotone in the score)."""
    n = len(y)
    pos = int(y.sum())
    if n < 2 * MIN_PER_CLASS:
        return None
    if min(pos, n - pos) < MIN_PER_CLASS:
        return constant_map(features, (pos + 1) / (n + 2), n)  # Laplace-smoothed rate
    with warnings.catch_warnings():  # an all-missing column has no median: it becomes 0
        warnings.simplefilter("ignore", RuntimeWarning)
        fill = np.nan_to_num(np.nanmedian(x, axis=0), nan=0.0)
    xf = np.where(np.isnan(x), fill, x)
    mean, scale = xf.mean(0), xf.std(0)
    scale = np.where(scale < 1e-9, 1.0, scale)
    z = (xf - mean) / scale
    coef = fit_signed(z, y, features)
    base: dict[str, Any] = {
        "features": features, "fill": fill.tolist(), "mean": mean.tolist(),
        "scale": scale.tolist(), "coef": coef[:-1].tolist(),
        "intercept": float(coef[-1]), "n": n,
    }
    if n < ISOTONIC_MIN_N or not isotonic:
        return StageMap(**base, method="platt")
    folds = min(5, min(pos, n - pos))
    oof = signed_oof(z, y, features, folds, seed)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(oof, y)
    return StageMap(**base, iso_x=iso.X_thresholds_.tolist(),
                    iso_y=iso.y_thresholds_.tolist(), method="isotonic")
