"""Conformal factuality (service/calibration/conformal.py): the threshold, its feasibility,
and the promise tested by simulation: over many calibration draws, how often the served
threshold's true violation rate exceeds alpha (must be <= delta)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.calibration.conformal import (
    GRID,
    breaking_scores,
    claim_threshold,
    feasibility,
    violations,
)

RESAMPLES = 500


def test_breaking_score_is_the_most_confident_wrong_claim() -> None:
    conf = [np.array([0.9, 0.4, 0.7]), np.array([0.8]), np.array([]), np.array([0.3, 0.6])]
    ok = [np.array([True, False, False]), np.array([True]), np.array([], dtype=bool),
          np.array([False, True])]
    r = breaking_scores(conf, ok)
    assert r.tolist() == [0.7, -math.inf, -math.inf, 0.3]
    assert [violations(r, t) for t in (0.8, 0.7, 0.5, 0.3, 0.0)] == [0, 1, 1, 2, 2]


def test_too_few_answers_certify_nothing() -> None:
    # (1 - 0.1)^n <= 0.1 needs n >= 22 even with no wrong claim at all
    none_wrong = np.full(21, -np.inf)
    assert claim_threshold(none_wrong, 0.1, 0.1).threshold is None
    got = claim_threshold(np.full(22, -np.inf), 0.1, 0.1)
    assert got.threshold == 0.0 and got.violations == 0 and got.p_value is not None


def test_the_threshold_is_the_lowest_certified_one() -> None:
    rng = np.random.default_rng(0)
    r = np.where(rng.random(400) < 0.5, rng.random(400), -np.inf)
    got = claim_threshold(r, 0.1, 0.1)
    assert got.threshold is not None and got.p_value is not None and got.p_value <= 0.1
    lower = [t for t in GRID if t < got.threshold]
    if lower:  # the next grid value down fails the test
        from scipy.stats import binom
        assert binom.cdf(violations(r, lower[0]), len(r), 0.1) > 0.1
    assert got.violations == violations(r, got.threshold)


def population(n: int, rng: np.random.Generator, ties: bool = False,
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Answers of 1-5 claims; a claim of confidence c is correct with probability c**0.6
    (an informative but miscalibrated score), c ~ Beta(3, 1.5); ``ties``: rounded to 0.1."""
    k = rng.integers(1, 6, size=n)
    c = rng.beta(3, 1.5, size=int(k.sum()))
    if ties:
        c = np.round(c, 1)
    y = rng.random(c.size) < c ** 0.6
    cuts = np.cumsum(k)[:-1]
    return np.split(c, cuts), np.split(y, cuts)


@pytest.mark.parametrize(("alpha", "delta", "n", "ties"), [
    (0.1, 0.1, 300, False), (0.2, 0.05, 150, True), (0.05, 0.2, 600, False)])
def test_violation_frequency_is_at_most_delta(alpha: float, delta: float, n: int,
                                              ties: bool) -> None:
    """The promise: P(true violation rate of the served threshold > alpha) <= delta."""
    rng = np.random.default_rng(7)
    big = breaking_scores(*population(200_000, rng, ties))
    true_rate = {t: float((big >= t).mean()) for t in GRID}
    misses, served, rates = 0, 0, []
    for _ in range(RESAMPLES):
        got = claim_threshold(breaking_scores(*population(n, rng, ties)), alpha, delta)
        if got.threshold is None:
            continue
        served += 1
        rates.append(true_rate[got.threshold])
        misses += true_rate[got.threshold] > alpha
    # a test of the test: one-sided binomial slack for RESAMPLES draws (3 sigma)
    assert misses / RESAMPLES <= delta + 3 * math.sqrt(delta * (1 - delta) / RESAMPLES)
    # and power: the threshold is served nearly always and spends most of the risk
    assert served >= 0.95 * RESAMPLES
    assert float(np.median(rates)) >= 0.4 * alpha  # ties (rounded scores) step coarsely


def test_a_naive_threshold_breaks_the_promise_the_test_keeps() -> None:
    """The simulation can fail: the empirical (1 - alpha) quantile of the breaking scores
    (no finite-sample correction) misses far more often than delta."""
    rng = np.random.default_rng(11)
    alpha, delta, n = 0.1, 0.1, 100
    big = breaking_scores(*population(100_000, rng))
    misses = 0
    for _ in range(RESAMPLES):
        r = breaking_scores(*population(n, rng))
        naive = min((t for t in GRID if (r >= t).mean() <= alpha), default=1.0)
        misses += float((big >= naive).mean()) > alpha
    assert misses / RESAMPLES > 2 * delta


def test_feasibility_reports_what_must_be_dropped_and_what_is_kept() -> None:
    conf = [np.array([0.9, 0.4]), np.array([0.8, 0.95])]
    ok = [np.array([True, False]), np.array([True, True])]
    f = feasibility(conf, ok, 0.85)
    assert (f.claims, f.wrong_share) == (4, 0.25)
    assert f.correct_kept == pytest.approx(2 / 3) and f.answers_whole == 0.0
    none = feasibility(conf, ok, None)
    assert none.correct_kept is None and none.wrong_share == 0.25
    assert feasibility([], [], 0.5).claims == 0
