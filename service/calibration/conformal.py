"""Conformal factuality with a finite-sample statement (Mohri & Hashimoto, arXiv 2402.10978).

A served threshold ``t`` keeps the claims whose confidence is ``>= t``. An answer then
*violates* when it keeps a wrong claim, which happens exactly when ``t`` is at or below
its **breaking score** ``r_i``, the highest confidence among its wrong claims (``-inf``
for an answer with none: no threshold makes it violate). On ``n`` labelled calibration
answers (exchangeable with the served ones), the violations at ``t`` are
Binomial(n, R(t)), R(t) the served violation rate, so ``p(t) = P(Binom(n, alpha) <= v(t))``
is a valid p-value for "R(t) > alpha".

The threshold is chosen by fixed-sequence testing down a grid fixed in advance, from the
most conservative value (keep nothing) to the least (keep all): while ``p(t) <= delta``,
``t`` is certified; the sequence stops at the first failure, and the lowest certified ``t``
(the one keeping most claims) is served. The family-wise error is ``<= delta``, so with
probability ``>= 1 - delta`` over the calibration draw, the share of served answers that
keep a wrong claim is ``<= alpha`` (Learn-then-Test, Angelopoulos et al. 2021; as
``service/calibration/thresholds.py`` does for whole answers). ``alpha`` and ``delta`` are
fixed before the labels are looked at. Dropping more claims (an abstention, a stricter
threshold) never adds a violation, so the statement also covers answers the whole-answer
cascade withholds.

Feasibility: a wrong claim must always be dropped, so the share of claims that are wrong
is what any threshold must drop at least; ``Feasibility`` reports it with the share of
correct claims the chosen threshold keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.calibration.thresholds import GRID, binomial_p_value

# The grid is the answer-level one (1.0, 0.995, ..., 0.0). Claim confidences are capped
# below 1.0 (``vocab.MAX_CONFIDENCE``), so t = 1.0 keeps nothing: the sequence's first
# test passes whenever n is large enough for zero violations to.


@dataclass(frozen=True)
class ClaimThreshold:
    alpha: float
    delta: float
    threshold: float | None  # None: no grid value is certified at (alpha, delta)
    answers: int  # calibration answers
    violations: int  # of them, those keeping a wrong claim at the threshold
    p_value: float | None


@dataclass(frozen=True)
class Feasibility:
    claims: int
    wrong_share: float  # claims any threshold must drop at least
    correct_kept: float | None  # share of correct claims kept at the threshold
    answers_whole: float | None  # share of answers keeping every claim at the threshold


def breaking_scores(conf: Sequence[np.ndarray], correct: Sequence[np.ndarray]) -> np.ndarray:
    """Per answer, the highest confidence among its wrong claims (-inf: none is wrong)."""
    out = np.full(len(conf), -np.inf)
    for i, (c, y) in enumerate(zip(conf, correct, strict=True)):
        wrong = np.asarray(c, dtype=float)[~np.asarray(y, dtype=bool)]
        if wrong.size:
            out[i] = float(wrong.max())
    return out


def violations(breaking: np.ndarray, t: float) -> int:
    """Answers that keep a wrong claim at threshold ``t`` (keep: confidence >= t)."""
    return int((breaking >= t).sum())


def claim_threshold(breaking: np.ndarray, alpha: float, delta: float,
                    grid: Sequence[float] = GRID) -> ClaimThreshold:
    """The lowest grid threshold certified by fixed-sequence testing (module docstring)."""
    n = len(breaking)
    best: ClaimThreshold | None = None
    for t in grid:
        v = violations(breaking, t)
        p = binomial_p_value(v, n, alpha)
        if p > delta:
            break
        best = ClaimThreshold(alpha, delta, float(t), n, v, p)
    return best or ClaimThreshold(alpha, delta, None, n, 0, None)


def feasibility(conf: Sequence[np.ndarray], correct: Sequence[np.ndarray],
                threshold: float | None) -> Feasibility:
    c = np.concatenate([np.asarray(x, dtype=float) for x in conf]) if conf else np.zeros(0)
    y = np.concatenate([np.asarray(x, dtype=bool) for x in correct]) if correct else np.zeros(
        0, dtype=bool)
    if threshold is None or not c.size:
        return Feasibility(int(c.size), float((~y).mean()) if c.size else 0.0, None, None)
    kept_correct = float((c[y] >= threshold).mean()) if y.any() else None
    whole = float(np.mean([bool((np.asarray(x) >= threshold).all()) for x in conf]))
    return Feasibility(int(c.size), float((~y).mean()), kept_correct, whole)
