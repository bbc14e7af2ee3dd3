"""Per-stage score -> P(correct) maps, fitted with scikit-learn, stored as plain JSON.

A map is a logistic regression over the stage's standardised cumulative features
(for small n this *is* Platt scaling of a linear score); with at least
``ISOTONIC_MIN_N`` examples its linear score is recalibrated by isotonic
regression fitted on out-of-fold scores (``cross_val_predict``), so the map is
not optimistic about its own training data. Nothing is pickled: a map is its
feature names, medians, means, scales, coefficients and isotonic knots
(``maps.py``, which the server imports without scikit-learn).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from service.calibration.maps import StageMap, constant_map

ISOTONIC_MIN_N = 150
MIN_PER_CLASS = 3


def fit_stage_map(x: np.ndarray, y: np.ndarray, features: list[str],
                  seed: int = 0) -> StageMap | None:
    """Fit one stage's map; None when the data cannot support one (too few examples)."""
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
    lr = LogisticRegression(C=1.0, max_iter=1000)
    lr.fit(z, y)
    base: dict[str, Any] = {
        "features": features, "fill": fill.tolist(), "mean": mean.tolist(),
        "scale": scale.tolist(), "coef": lr.coef_[0].tolist(),
        "intercept": float(lr.intercept_[0]), "n": n,
    }
    if n < ISOTONIC_MIN_N:
        return StageMap(**base, method="platt")
    folds = min(5, min(pos, n - pos))
    oof = cross_val_predict(LogisticRegression(C=1.0, max_iter=1000), z, y, cv=folds,
                            method="decision_function")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(oof, y)
    return StageMap(**base, iso_x=iso.X_thresholds_.tolist(),
                    iso_y=iso.y_thresholds_.tolist(), method="isotonic")
