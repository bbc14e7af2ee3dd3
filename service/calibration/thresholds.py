"""Risk-controlled answer thresholds by Learn-then-Test (fixed-sequence testing).

For a target risk ``alpha`` and each candidate answer threshold ``t`` (tested from
the most conservative, 1.0, downwards) the null hypothesis is "the error rate
among answered questions exceeds alpha". Given the ``m`` questions the policy
answers on the calibration split, their errors are Binomial(m, risk), so
``p = P(Binom(m, alpha) <= errors)`` is a valid p-value. Fixed-sequence testing
rejects in order while ``p <= delta``: the family-wise error is <= delta, so with
probability >= 1 - delta *every* rejected threshold's risk is <= alpha and the one
answering most questions may be kept (Angelopoulos et al. 2021, "Learn then
Test"). Where the sequence starts is learned on the *fit* split (``learned_order``),
never on the test split's labels. Thresholds answering fewer than ``min_answered``
questions are skipped without stopping (a label-free choice, so validity holds).
The abstain threshold is fixed before the test, so the guarantee covers the whole
policy. Each alpha of a table is its own statement at level delta.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import bdtr

from service.calibration.simulate import Replay, decide

DEFAULT_ALPHAS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
GRID = tuple(round(1.0 - i / 200, 3) for i in range(201))  # 1.0, 0.995, ..., 0.0


@dataclass(frozen=True)
class Choice:
    alpha: float
    threshold: float | None  # None: no threshold passes the test at this alpha
    answered: int
    errors: int
    p_value: float | None


def binomial_p_value(errors: int, answered: int, alpha: float) -> float:
    """P(Binom(answered, alpha) <= errors): small when the risk is clearly below alpha.

    ``scipy.special.bdtr`` is the same exact binomial tail as ``scipy.stats.binom.cdf``,
    without the distribution object's per-call overhead (the grid search calls it often)."""
    return float(bdtr(errors, answered, alpha)) if answered else 1.0


def _answered_errors(rp: Replay, t: float, abstain_t: float, max_stage: int) -> tuple[int, int]:
    out = decide(rp, t, min(abstain_t, t), max_stage)
    return int(out.answered.sum()), int((~rp.correct[out.answered]).sum())


def default_min_answered(alpha: float, delta: float) -> int:
    """Thrice the count at which zero errors would just pass, at least 10 (label-free)."""
    return max(10, math.ceil(3 * math.log(delta) / math.log(1 - alpha)))


def ltt_threshold(rp: Replay, alpha: float, delta: float, abstain_t: float, max_stage: int,
                  grid: Sequence[float] = GRID, min_answered: int | None = None,
                  order: Sequence[float] | None = None) -> Choice:
    """Fixed-sequence testing at level delta along ``order`` (default: ``grid``, 1.0 down).

    Tests stop at the first threshold that does not pass; every threshold passed before
    is certified at once (family-wise error <= delta), so the one answering the most
    questions is returned. Thresholds answering fewer than ``min_answered`` questions are
    skipped, not tested: a label-free rule, so an early error among a handful of answers
    does not end the sequence before it has power.
    """
    if min_answered is None:
        min_answered = default_min_answered(alpha, delta)
    passed: list[Choice] = []
    for t in (grid if order is None else order):
        m, errors = _answered_errors(rp, t, abstain_t, max_stage)
        if m < min_answered:
            continue
        p = binomial_p_value(errors, m, alpha)
        if p > delta:
            break
        passed.append(Choice(alpha, float(t), m, errors, p))
    if not passed:
        return Choice(alpha, None, 0, 0, None)
    return max(passed, key=lambda c: (c.answered, c.threshold))


def learned_order(fit: Replay, alpha: float, abstain_t: float, max_stage: int,
                  grid: Sequence[float] = GRID) -> list[float]:
    """The "learn" of Learn-then-Test: where the fixed sequence starts.

    The sequence starts at the threshold whose *fit*-split p-value is smallest (the
    highest such threshold on ties) and runs down the grid from there. It uses no
    test-split label, so fixed-sequence testing along it keeps the guarantee. Starting
    top-down instead, a few confident errors among the few answers at the top of the
    grid end the sequence before it has power; skipping that top is what the fit split
    buys (simulation in tests/unit/test_ltt_power.py: coverage 0.48 vs 0.09 there, and
    about the same power as top-down on well-calibrated scores).
    """
    ps = []
    for t in grid:
        m, errors = _answered_errors(fit, t, abstain_t, max_stage)
        ps.append(binomial_p_value(errors, m, alpha))
    start = int(np.argmin(ps))  # first index of the minimum: the highest threshold
    return [float(t) for t in grid[start:]]


def ltt_table(rp: Replay, alphas: Sequence[float], delta: float, abstain_t: float,
              max_stage: int, fit: Replay | None = None) -> list[Choice]:
    """One Learn-then-Test threshold per alpha (the order learned on ``fit`` when given)."""
    return [
        ltt_threshold(rp, a, delta, abstain_t, max_stage,
                      order=learned_order(fit, a, abstain_t, max_stage)
                      if fit is not None else None)
        for a in alphas
    ]


def alpha_on_fit(fit: Replay, alphas: Sequence[float], delta: float, abstain_t: float,
                 max_stage: int, grid: Sequence[float] | None = None) -> float:
    """``--default-alpha auto``: the smallest alpha Learn-then-Test certifies on the *fit*
    split (the largest when none is). A function of the fit split alone, so the test
    split's level-delta statement for the chosen alpha holds as for a fixed one."""
    ok = [a for a in sorted(alphas)
          if ltt_threshold(fit, a, delta, abstain_t, max_stage,
                           GRID if grid is None else grid).threshold is not None]
    return ok[0] if ok else max(alphas)


def pick_abstain_threshold(rp: Replay, keep_correct: float = 0.95) -> float:
    """Early-abstain ("hopeless") cut on the stage-0 confidence, chosen on the *fit* split.

    The highest grid value below which at most ``1 - keep_correct`` of the correct
    answers fall, so early abstention rarely throws a right answer away.
    """
    c0 = np.where(np.isnan(rp.conf[:, 0]), 0.0, rp.conf[:, 0])[rp.correct]
    if len(c0) == 0:
        return 0.0
    return float(np.floor(np.quantile(c0, 1 - keep_correct) * 100) / 100)
