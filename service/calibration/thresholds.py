"""Risk-controlled answer thresholds by Learn-then-Test (fixed-sequence testing).

For a target risk ``alpha`` and each candidate answer threshold ``t`` (tested from
the most conservative, 1.0, downwards) the null hypothesis is "the error rate
among answered questions exceeds alpha". Given the ``m`` questions the policy
answers on the calibration split, their errors are Binomial(m, risk), so
``p = P(Binom(m, alpha) <= errors)`` is a valid p-value. Fixed-sequence testing
rejects in order while ``p <= delta`` and keeps the last rejected threshold:
the family-wise error is <= delta, hence with probability >= 1 - delta the
chosen threshold's risk is <= alpha (Angelopoulos et al. 2021, "Learn then
Test"). Thresholds answering fewer than ``min_answered`` questions are skipped
without stopping (a label-free choice: answered sets are nested and label-free, so
validity holds). The abstain
threshold is fixed before the test, so the guarantee covers the whole policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

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
    """P(Binom(answered, alpha) <= errors): small when the risk is clearly below alpha."""
    return float(binom.cdf(errors, answered, alpha)) if answered else 1.0


def ltt_threshold(rp: Replay, alpha: float, delta: float, abstain_t: float, max_stage: int,
                  grid: Sequence[float] = GRID, min_answered: int | None = None,
                  start: float | None = None) -> Choice:
    """The lowest threshold reached by fixed-sequence testing at level delta.

    The sequence starts at ``start`` (chosen on other data, see ``start_threshold``) and
    where at least ``min_answered`` questions are answered (default: thrice the count
    at which zero errors would just pass, at least 10), so an early error among a
    handful of answers does not end the test before it has power.
    """
    if min_answered is None:
        min_answered = max(10, math.ceil(3 * math.log(delta) / math.log(1 - alpha)))
    best = Choice(alpha, None, 0, 0, None)
    for t in grid:
        if start is not None and t > start + 1e-12:
            continue
        out = decide(rp, t, min(abstain_t, t), max_stage)
        m = int(out.answered.sum())
        if m < min_answered:
            continue
        errors = int((~rp.correct[out.answered]).sum())
        p = binomial_p_value(errors, m, alpha)
        if p > delta:
            break
        best = Choice(alpha, float(t), m, errors, p)
    return best


def start_threshold(fit: Replay, alpha: float, delta: float, abstain_t: float,
                    max_stage: int) -> float | None:
    """Where to start the test, learned on the *fit* split (the "learn" of Learn-then-Test).

    The highest threshold whose fit-split risk already passes the test; starting
    there skips the top of the grid, where a few confident errors would end the
    sequence at once. It uses no test-split label, so the guarantee is unchanged.
    """
    c = ltt_threshold(fit, alpha, delta, abstain_t, max_stage, min_answered=10)
    if c.threshold is None:
        return None
    for t in GRID:  # the first grid value at which the fit split passes
        out = decide(fit, t, min(abstain_t, t), max_stage)
        m = int(out.answered.sum())
        if m >= 10 and binomial_p_value(int((~fit.correct[out.answered]).sum()), m,
                                        alpha) <= delta:
            return t
    return None


def ltt_table(rp: Replay, alphas: Sequence[float], delta: float, abstain_t: float,
              max_stage: int, fit: Replay | None = None) -> list[Choice]:
    """One Learn-then-Test threshold per alpha (starts learned on ``fit`` when given)."""
    return [
        ltt_threshold(rp, a, delta, abstain_t, max_stage,
                      start=start_threshold(fit, a, delta, abstain_t, max_stage)
                      if fit is not None else None)
        for a in alphas
    ]


def pick_abstain_threshold(rp: Replay, keep_correct: float = 0.95) -> float:
    """Early-abstain ("hopeless") cut on the stage-0 confidence, chosen on the *fit* split.

    The highest grid value below which at most ``1 - keep_correct`` of the correct
    answers fall, so early abstention rarely throws a right answer away.
    """
    c0 = np.where(np.isnan(rp.conf[:, 0]), 0.0, rp.conf[:, 0])[rp.correct]
    if len(c0) == 0:
        return 0.0
    return float(np.floor(np.quantile(c0, 1 - keep_correct) * 100) / 100)
