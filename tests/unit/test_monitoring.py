"""Live monitoring maths: the confidence sequence under continuous peeking (simulation),
the promise verdicts, PSI drift and the artifact's reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.calibration.artifact import ArtifactSpec, parse_artifact
from service.calibration.reference import Bins, DriftReference, bin_edges, bin_fractions
from service.monitoring.confseq import bernoulli_cs, half_width
from service.monitoring.drift import DRIFT_THRESHOLD, DriftMonitor, psi
from service.monitoring.promise import PromiseKey, PromiseMonitor
from service.vocab import STAGES
from tests.unit.test_calibration import make_spec

ALPHA, LEVEL = 0.1, 0.05
LABELS, REPS = 5000, 2000  # labels per replication, replications (checked after every label)


def first_breach(true_risk: float, seed: int) -> np.ndarray:
    """Per replication, the label count at which the lower bound first exceeds ALPHA
    (LABELS + 1 when it never does), the monitor checked after every single label."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, LABELS + 1)
    out = np.full(REPS, LABELS + 1)
    for chunk in np.array_split(np.arange(REPS), 4):  # ~10M labels, bounded memory
        errors = np.cumsum(rng.random((len(chunk), LABELS)) < true_risk, axis=1)
        lower, _ = bernoulli_cs(errors, t, LEVEL)
        hit = lower > ALPHA
        out[chunk] = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, LABELS + 1)
    return out


def test_kept_promise_is_falsely_breached_at_most_at_the_stated_level() -> None:
    """True risk exactly alpha (the hardest kept promise): over 5000 labels, peeking after
    each, the share of replications ever reported breached stays <= LEVEL."""
    never = first_breach(ALPHA, seed=1) > LABELS
    rate = 1 - never.mean()
    print(f"\nfalse-breach rate {rate:.4f} over {REPS} x {LABELS} labels (level {LEVEL})")
    assert rate <= LEVEL


def test_naive_interval_recomputed_after_each_label_is_not_valid() -> None:
    """Why the sequence: a 95% Wald interval recomputed after every label "breaches" a kept
    promise far more often than 5% (the test above would fail with it)."""
    rng = np.random.default_rng(2)
    t = np.arange(1, 2001)
    errors = np.cumsum(rng.random((500, 2000)) < ALPHA, axis=1)
    p = errors / t
    lower = p - 1.96 * np.sqrt(p * (1 - p) / t)
    rate = ((lower > ALPHA) & (t >= 10)).any(axis=1).mean()
    assert rate > 2 * LEVEL, rate


def test_broken_promise_is_detected_and_reports_how_fast() -> None:
    """True risk alpha + 0.1: every replication is detected within 5000 labels."""
    at = first_breach(ALPHA + 0.1, seed=3)
    assert (at <= LABELS).mean() >= 0.99
    median = int(np.median(at))
    print(f"\nbroken promise (risk {ALPHA + 0.1:g}, alpha {ALPHA:g}): detected after a median "
          f"of {median} labels (p90 {int(np.quantile(at, 0.9))})")
    assert 50 < median < 1000


def test_sequence_bounds_shrink_and_cover() -> None:
    lo, hi = bernoulli_cs(0, 0)
    assert (float(lo), float(hi)) == (0.0, 1.0)
    assert half_width(100) > half_width(1000) > half_width(10_000)
    lo, hi = bernoulli_cs(100, 1000)
    assert float(lo) < 0.1 < float(hi) and float(hi) - float(lo) == pytest.approx(
        2 * half_width(1000))
    with pytest.raises(ValueError):
        bernoulli_cs(1, 2, level=0)


def test_verdicts_follow_the_stated_rule() -> None:
    mon = PromiseMonitor(PromiseKey("default", "a1", 0.2), min_labels=20)
    assert mon.verdict == "unverified" and mon.estimate is None
    for i in range(20):
        mon.observe_label(correct=i % 10 != 0)  # 10% wrong
    assert mon.labelled == 20 and mon.errors == 2 and mon.verdict == "holding"
    for _ in range(200):
        mon.observe_label(correct=False)
    assert mon.verdict == "breached" and mon.bounds()[0] > 0.2


def test_breach_needs_no_minimum_but_holding_does() -> None:
    mon = PromiseMonitor(PromiseKey("default", "a1", 0.05), min_labels=1000)
    for _ in range(60):
        mon.observe_label(correct=False)
    assert mon.labelled < mon.min_labels and mon.verdict == "breached"


def test_relabelling_a_decision_counts_it_once() -> None:
    mon = PromiseMonitor(PromiseKey("default", "a1", 0.2))
    mon.observe_label(correct=False)
    mon.observe_label(correct=True, previous=False)
    assert (mon.labelled, mon.errors) == (1, 0)
    mon.observe_decision(abstained=True)
    mon.observe_decision(abstained=False)
    ab = mon.abstention()
    assert ab["decisions"] == 2 and ab["rate"] == 0.5 and ab["lower"] < 0.5 < ab["upper"]


# -- drift ------------------------------------------------------------------------------------
def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    ref = rng.beta(5, 2, 400)
    edges = bin_edges(ref)
    fr = bin_fractions(ref, edges)
    assert len(edges) == 9 and all(abs(f - 0.1) < 0.02 for f in fr)
    same = np.bincount(np.searchsorted(edges, rng.beta(5, 2, 500), side="right"), minlength=10)
    shifted = np.bincount(np.searchsorted(edges, rng.beta(2, 5, 500), side="right"),
                          minlength=10)
    assert psi(same, fr, 400) < 0.1 < DRIFT_THRESHOLD < psi(shifted, fr, 400)


def test_drift_window_slides_in_constant_time_and_matches_a_recount(spec: ArtifactSpec) -> None:
    assert spec.reference is not None
    mon = DriftMonitor(spec.reference, size=50)
    rng = np.random.default_rng(1)
    values = rng.uniform(size=180)
    for v in values[:20]:
        mon.observe(float(v), 0)
    assert mon.report()["confidence"]["psi"] is None  # under half full: no statistic yet
    for v in values[20:]:
        mon.observe(float(v), 1)
    rep = mon.report()
    edges = spec.reference.confidence_edges
    recount = np.bincount(np.searchsorted(edges, values[-50:], side="right"),
                          minlength=len(edges) + 1)
    assert rep["confidence"]["n"] == 50
    assert rep["confidence"]["psi"] == pytest.approx(
        psi(recount, spec.reference.confidence_fractions, spec.reference.n))
    assert rep["stage_mix"]["window_shares"][1] == 1.0


def test_a_flat_map_cannot_hide_a_shift_of_its_inputs() -> None:
    """A stage-0 map that kept no input gives every question one confidence: its PSI stays
    near 0 whatever comes in (the failure seen in CI). The raw signals' PSI still moves."""
    rng = np.random.default_rng(3)
    ref_nll = rng.gamma(2.0, 0.2, 300)  # calibration-time mean NLL
    edges = bin_edges(ref_nll)
    ref = DriftReference(n=300, confidence_edges=bin_edges(np.full(300, 0.4)),
                         confidence_fractions=bin_fractions(np.full(300, 0.4), [0.4]),
                         signals={"mean_nll": Bins(edges=edges,
                                                   fractions=bin_fractions(ref_nll, edges))})
    same, moved = DriftMonitor(ref, size=100), DriftMonitor(ref, size=100)
    for a, b in zip(rng.gamma(2.0, 0.2, 100), rng.gamma(2.0, 0.6, 100), strict=True):
        same.observe(0.4, 0, {"mean_nll": float(a)})
        moved.observe(0.4, 0, {"mean_nll": float(b), "n_tokens": 9.0})  # unknown: ignored
    rs, rm = same.report(), moved.report()
    assert rs["confidence"]["psi"] == rm["confidence"]["psi"] < 0.05  # blind, both times
    assert rs["signals"]["mean_nll"]["psi"] < DRIFT_THRESHOLD and not rs["drift"]  # ~9(1/W+1/m)
    assert rm["signals"]["mean_nll"]["psi"] > DRIFT_THRESHOLD and rm["drift"]
    assert rm["signals"]["mean_nll"]["n"] == 100 and set(rm["signals"]) == {"mean_nll"}


@pytest.fixture(scope="module")
def spec() -> ArtifactSpec:
    return make_spec(600, seed=2, default_alpha=0.3)


def test_artifact_carries_a_reference_and_loads_without_one(spec: ArtifactSpec) -> None:
    ref = spec.reference
    assert spec.default_supported  # so the default policy has a stage mix
    assert ref is not None and ref.n == spec.splits["test"] + spec.splits["heldout"]
    assert sum(ref.confidence_fractions) == pytest.approx(1.0)
    assert len(ref.confidence_fractions) == len(ref.confidence_edges) + 1
    assert ref.stage_mix is not None and sum(ref.stage_mix) == pytest.approx(1.0)
    assert set(ref.signals) == set(STAGES[0].signals)  # every raw stage-0 signal is binned
    for bins in ref.signals.values():
        assert sum(bins.fractions) == pytest.approx(1.0)
    raw = json.loads(spec.model_dump_json())
    raw.pop("reference")  # an artifact written before drift monitoring
    model = parse_artifact(json.dumps(raw), "old.json")
    assert model.spec.reference is None


def test_each_profile_reports_its_own_drift() -> None:
    """With several profiles active, each one's ``drift`` is its own artifact's (a leftover
    loop variable once gave every profile the last profile's drift)."""
    from service.calibration.artifact import CalibratedModel
    from service.metrics import Metrics
    from service.monitoring.hub import Monitoring

    math = CalibratedModel(make_spec(300, seed=1, profile="math", tasks=("math",)))
    fact = CalibratedModel(make_spec(300, seed=2, profile="factual", tasks=("factual",)))
    mon = Monitoring(Metrics())
    mon.activate([math, fact])
    drift = {r["profile"]: r["drift"] for r in mon.report()}
    for model in (math, fact):
        assert model.spec.reference is not None
        own = DriftMonitor(model.spec.reference, size=mon.window).report()
        assert drift[model.spec.profile] == own, model.spec.profile
    assert drift["math"] != drift["factual"]
