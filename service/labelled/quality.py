"""The quality of a confidence for selective prediction, over (confidence, correct) arrays.

AUROC (does confidence rank right above wrong?), the risk-coverage curve and its
area (AURC), accuracy at a coverage (answer only the most confident fraction),
and expected calibration error (ECE, equal-width bins).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def auroc(conf: np.ndarray, correct: np.ndarray) -> float | None:
    """Area under ROC of confidence for separating correct from wrong; None if one class."""
    y = np.asarray(correct, dtype=bool)
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, np.asarray(conf, dtype=float)))


def risk_coverage(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, risk) when answering the k most confident, k = 1..n (ties broken stably)."""
    order = np.argsort(-np.asarray(conf, dtype=float), kind="stable")
    wrong = ~np.asarray(correct, dtype=bool)[order]
    k = np.arange(1, len(order) + 1)
    return k / len(order), np.cumsum(wrong) / k


def aurc(conf: np.ndarray, correct: np.ndarray) -> float:
    """Mean selective risk over all coverages (lower is better)."""
    _, risk = risk_coverage(conf, correct)
    return float(risk.mean()) if len(risk) else float("nan")


def accuracy_at_coverage(conf: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    """Accuracy among the ``coverage`` fraction of questions with the highest confidence."""
    n = len(conf)
    k = max(1, int(round(coverage * n)))
    order = np.argsort(-np.asarray(conf, dtype=float), kind="stable")[:k]
    return float(np.asarray(correct, dtype=bool)[order].mean())


def reliability(conf: np.ndarray, correct: np.ndarray,
                bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) per non-empty equal-width bin."""
    c = np.clip(np.asarray(conf, dtype=float), 0, 1)
    y = np.asarray(correct, dtype=float)
    idx = np.minimum((c * bins).astype(int), bins - 1)
    return [(float(c[idx == b].mean()), float(y[idx == b].mean()), int((idx == b).sum()))
            for b in range(bins) if (idx == b).any()]


def ece(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: count-weighted |accuracy - confidence| over bins."""
    n = len(conf)
    return float(sum(cnt * abs(acc - mc) for mc, acc, cnt in reliability(conf, correct, bins))
                 / n) if n else float("nan")
