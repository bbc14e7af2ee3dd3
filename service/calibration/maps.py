"""The runtime side of a calibration map: evaluate ``P(correct)`` from stored JSON numbers.

numpy only: the server loads and runs maps without importing scikit-learn; fitting
lives in ``fit.py``. Nothing is pickled: a map is its feature names, medians,
means, scales, coefficients and isotonic knots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from service.calibration.features import vectorise


@dataclass(frozen=True)
class StageMap:
    """``P(correct) = iso(w . (x - mean) / scale + b)`` (or its sigmoid without knots)."""

    features: list[str]
    fill: list[float]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    iso_x: list[float] | None = None
    iso_y: list[float] | None = None
    n: int = 0
    method: str = "platt"

    def score(self, x: np.ndarray) -> np.ndarray:
        """The linear score for rows of raw feature vectors (NaN imputed)."""
        x = np.where(np.isnan(x), np.asarray(self.fill), x)
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.asarray(z @ np.asarray(self.coef) + self.intercept, dtype=float)

    def prob(self, x: np.ndarray) -> np.ndarray:
        z = self.score(np.atleast_2d(x))
        if self.iso_x is not None and self.iso_y is not None:
            return np.asarray(np.interp(z, self.iso_x, self.iso_y), dtype=float)
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=float)

    def __call__(self, features: Mapping[str, float]) -> float:
        return float(self.prob(np.asarray([vectorise(features, self.features)]))[0])

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def constant_map(features: list[str], p: float, n: int) -> StageMap:
    """A map that says ``p`` whatever the features (one class only in the data)."""
    z = math.log(p / (1 - p))
    k = len(features)
    return StageMap(features, [0.0] * k, [0.0] * k, [1.0] * k, [0.0] * k, z, n=n,
                    method="constant")
