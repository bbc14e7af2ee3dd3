"""The filtered promise, by simulation: with probability >= 1 - delta, the error rate among
answered questions *that pass the scope test* is <= alpha, even when the served traffic
mixes in questions unlike the calibration set.

What is simulated. Two populations of stage-0 records (three signals that are noisy views
of a latent P(correct); question and answer texts of given lengths):

* *in-domain*: questions of 20-400 characters, answers of 1-40, P(correct) = the signals'
  view (Beta(1.5, 0.6), mean 0.71), so the confidence map is calibrated on them;
* *out-of-domain*: questions of 1,500-5,000 characters, answers of 300-1,500, signals that
  look confident (a view from Beta(4, 1), mean 0.8) but P(correct) = 0.35: the model
  bluffs.

The calibration set is in-domain only (400 records); the served traffic is 3/4 in-domain,
1/4 out-of-domain. Each of 400 resamples draws a fresh calibration set and runs what
``build_artifact`` runs after the maps (``certify``; the first test checks, against two
real builds, that it gives the same scope test, in-scope count, abstain cut and threshold):
the split, the length-only scope test fitted on the fit split at the default level
(``fit_scope_on``), Learn-then-Test at alpha 0.2, delta 0.1 on the test split's in-scope
records (``in_scope``, ``pick_abstain_threshold``, ``ltt_table`` in the order learned on
the fit split). The confidence maps are one fixed artifact's, fitted on an independent
in-domain set: the guarantee is conditional on the maps (the build fits them on the fit
split, which Learn-then-Test never sees), so fixing them loses nothing and saves 400 fits.

The truth. Each certified policy (its threshold at the model's decision stage, decided as
``heldout_metrics`` decides: ``decide`` on a ``replay``) runs on a fixed served pool of
26,000 requests whose P(correct) is known. Its risk among the requests the resample's
scope test keeps (``in_scope``, the build's own function) is the mean P(wrong) over the
answered ones (the realised error rate of the pool's labels is checked too). A violation
is a certified threshold whose risk exceeds alpha. Learn-then-Test on the in-scope test
records promises violations at most delta of the time for requests drawn like them, i.e.
for in-domain requests that pass the scope test: so the violation frequency over 400
resamples must be <= delta up to 3 binomial sd, and it is, both over the in-domain
requests kept and over the whole kept traffic. The latter holds only because the scope
test turns the out-of-domain requests away (checked: none passes, while at most
``level`` of the in-domain ones is turned away); the same thresholds over *all* served
requests violate nearly every time. That contrast is why the promise is stated for
in-scope requests only, and why the thresholds are tested on in-scope records.

Lengths are drawn from fixed grids (30 x 13 in-domain and 8 x 6 out-of-domain (question,
answer) length pairs), so the scope decisions of the whole pool cost one ``in_scope`` call
on one record per pair: a length-only scope test reads nothing else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest

from service.calibration.artifact import CalibratedModel
from service.calibration.build import build_artifact, fit_scope_on, in_scope, split
from service.calibration.features import vectorise
from service.calibration.records import Record
from service.calibration.scope import DEFAULT_LEVEL, Component
from service.calibration.simulate import Replay, decide, replay
from service.calibration.thresholds import ltt_table, pick_abstain_threshold
from service.vocab import MAX_CONFIDENCE
from tests.unit.test_calibration import SERVING

ALPHA, DELTA, LEVEL, N, REPS = 0.2, 0.1, DEFAULT_LEVEL, 400, 400
NOISE = 0.15  # sd of the signals around their view of P(correct)
COMPONENTS: tuple[Component, ...] = ("question_length", "answer_length")
INSTRUCTION = SERVING.math_instruction or None  # what build_artifact passes to the scope
FILLER = "what is the capital of the river stone seven blue alpha " * 120  # 6,720 chars
STAGE0 = (True, False, False, False)


def grid(lo: int, hi: int, n: int) -> np.ndarray:
    return np.unique(np.round(np.exp(np.linspace(np.log(lo), np.log(hi), n))).astype(int))


@dataclass(frozen=True)
class Domain:
    name: str
    q_lengths: np.ndarray  # characters, drawn uniformly from the grid (log-uniform)
    a_lengths: np.ndarray
    view: tuple[float, float]  # what the signals say P(correct) is: Beta(a, b)
    p_correct: float | None  # None: the view is the truth (calibrated signals)


IN = Domain("in", grid(20, 400, 30), grid(1, 40, 15), (1.5, 0.6), None)
OUT = Domain("out", grid(1500, 5000, 8), grid(300, 1500, 6), (4.0, 1.0), 0.35)
DOMAINS = (IN, OUT)


def pair_id(d: Domain, qi: np.ndarray, ai: np.ndarray) -> np.ndarray:
    offset = 0 if d is IN else len(IN.q_lengths) * len(IN.a_lengths)
    return np.asarray(offset + qi * len(d.a_lengths) + ai)


def draw(rng: np.random.Generator, n: int, d: Domain) -> tuple[list[Record], np.ndarray,
                                                                np.ndarray]:
    """n records of domain d, their latent P(wrong), and their (question, answer) length
    pair ids."""
    view = rng.beta(*d.view, n)
    p_correct = view if d.p_correct is None else np.full(n, d.p_correct)
    correct = rng.uniform(size=n) < p_correct
    noise = rng.normal(0, NOISE, (n, 3))
    qi, ai = rng.integers(len(d.q_lengths), size=n), rng.integers(len(d.a_lengths), size=n)
    recs = [Record(f"{d.name}{i}", bool(correct[i]), FILLER[: d.a_lengths[ai[i]]].strip(),
                   {"token_entropy": max(0.0, 1.5 * (1 - view[i]) + noise[i, 0]),
                    "mean_nll": max(0.0, 1.0 - view[i] + noise[i, 1]),
                    "min_token_prob": float(np.clip(view[i] + noise[i, 2], 0, 1)),
                    "n_tokens": 4.0},
                   list(STAGE0), list(STAGE0), question=FILLER[: d.q_lengths[qi[i]]].strip())
            for i in range(n)]
    return recs, 1 - p_correct, pair_id(d, qi, ai)


def representatives() -> list[Record]:
    """One record per (question length, answer length) pair, in pair-id order."""
    out = []
    for d in DOMAINS:
        for q in d.q_lengths:
            for a in d.a_lengths:
                out.append(Record(f"{d.name}-{q}-{a}", True, FILLER[:a].strip(), {},
                                  list(STAGE0), list(STAGE0), question=FILLER[:q].strip()))
    return out


@dataclass(frozen=True)
class Pool:
    """The served traffic: a fixed large sample, replayed once under the fixed maps."""

    records: list[Record]
    p_wrong: np.ndarray
    pair: np.ndarray
    ood: np.ndarray


@pytest.fixture(scope="module")
def model() -> CalibratedModel:
    """Fixed confidence maps, fitted on an independent in-domain set (fit split 140: a
    Platt map, smooth in the signals)."""
    recs, _, _ = draw(np.random.default_rng(100), 280, IN)
    return CalibratedModel(build_artifact(recs, dataset="in-domain", settings=SERVING, seed=0,
                                          delta=DELTA, holdout=0.0, alphas=[ALPHA],
                                          default_alpha=ALPHA))


@pytest.fixture(scope="module")
def pool() -> Pool:
    rng = np.random.default_rng(200)
    rin, win, pin = draw(rng, 19_500, IN)
    rout, wout, pout = draw(rng, 6_500, OUT)
    return Pool(rin + rout, np.r_[win, wout], np.r_[pin, pout],
                np.r_[np.zeros(len(rin), bool), np.ones(len(rout), bool)])


@dataclass(frozen=True)
class Certified:
    threshold: float | None
    abstain: float
    scope_kept: np.ndarray  # per length pair: does the fitted scope test keep it
    test_in: int
    test_n: int


def stage0_replay(records: list[Record], model: CalibratedModel) -> Replay:
    """``replay`` of stage-0 records, vectorised: the stage-0 map on all rows at once, capped
    as ``CalibratedModel.confidence`` caps it (checked equal to ``replay`` below)."""
    stage_map = model.maps[0]
    assert stage_map is not None and all(r.ran == list(STAGE0) for r in records)
    x = np.array([vectorise(r.features(0), stage_map.features) for r in records])
    conf = np.full((len(records), len(STAGE0)), np.nan)
    conf[:, 0] = np.minimum(MAX_CONFIDENCE, np.maximum(0.0, stage_map.prob(x)))
    return Replay(conf, ~np.isnan(conf), np.array([r.empty for r in records], dtype=bool),
                  np.array([r.correct for r in records], dtype=bool))


def certify(cal: list[Record], seed: int, model: CalibratedModel,
            reps: list[Record]) -> Certified:
    """What build_artifact does after fitting the maps (holdout 0, one alpha)."""
    parts = split(cal, seed, 0.0)
    scope, why = fit_scope_on(parts["fit"], None, LEVEL, seed, COMPONENTS, INSTRUCTION)
    assert scope is not None, why
    test_in = in_scope(parts["test"], scope, None)
    fit_rp = stage0_replay(parts["fit"], model)
    abstain = pick_abstain_threshold(fit_rp)
    stage = model.decision_stage
    choice = ltt_table(stage0_replay(test_in, model), [ALPHA], DELTA, abstain, stage,
                       fit=fit_rp)[0]
    kept = {id(r) for r in in_scope(reps, scope, None)}
    return Certified(choice.threshold, abstain, np.array([id(r) in kept for r in reps]),
                     len(test_in), len(parts["test"]))


def risk(p_wrong: np.ndarray, mask: np.ndarray) -> float:
    return float(p_wrong[mask].mean()) if mask.any() else 0.0


def test_the_simulation_runs_what_build_artifact_runs(model: CalibratedModel) -> None:
    """``certify`` is build_artifact's scope and threshold steps: under the maps of a real
    build, the same scope test, in-scope counts, abstain cut and threshold."""
    reps = representatives()
    rng = np.random.default_rng(300)
    for seed in (1, 2):
        cal, _, _ = draw(rng, N, IN)
        spec = build_artifact(cal, dataset="in-domain", settings=SERVING, seed=seed,
                              delta=DELTA, holdout=0.0, alphas=[ALPHA], default_alpha=ALPHA,
                              scope_level=LEVEL, scope_components=COMPONENTS)
        built = CalibratedModel(spec)
        fast, slow = stage0_replay(cal, built), replay(cal, built)
        # equal but for the last bits of a batched vs a one-row matrix product
        assert np.allclose(fast.conf, slow.conf, rtol=0, atol=1e-12, equal_nan=True)
        assert np.array_equal(fast.correct, slow.correct)
        got = certify(cal, seed, built, reps)
        assert spec.heldout["scope"]["test_in_scope"] == f"{got.test_in}/{got.test_n}"
        assert spec.abstain_threshold == got.abstain
        row = spec.thresholds[str(built.decision_stage)][0]
        assert (row.alpha, row.threshold) == (ALPHA, got.threshold)
        n_in = len(IN.q_lengths) * len(IN.a_lengths)
        assert not got.scope_kept[n_in:].any()  # every out-of-domain length pair: out
        assert got.scope_kept[:n_in].mean() > 0.8  # most in-domain pairs: in


def test_the_promise_holds_among_in_scope_requests_over_400_resamples(
        model: CalibratedModel, pool: Pool) -> None:
    start = time.perf_counter()
    reps = representatives()
    served = replay(pool.records, model)
    wrong = (~served.correct).astype(float)  # the pool's labels: the realised error rate
    rng = np.random.default_rng(400)
    found = 0
    violations = {"in scope": 0, "in scope, in-domain": 0, "in scope, realised": 0,
                  "all served": 0}
    passed_ood, passed_in, coverage = [], [], []
    for rep in range(REPS):
        cal, _, _ = draw(rng, N, IN)
        c = certify(cal, rep, model, reps)
        keep = c.scope_kept[pool.pair]
        passed_ood.append(keep[pool.ood].mean())
        passed_in.append(keep[~pool.ood].mean())
        if c.threshold is None:
            continue
        found += 1
        answered = decide(served, c.threshold, min(c.abstain, c.threshold),
                          model.decision_stage).answered
        coverage.append(answered[keep & ~pool.ood].sum() / (~pool.ood).sum())
        violations["in scope"] += risk(pool.p_wrong, answered & keep) > ALPHA
        violations["in scope, in-domain"] += risk(pool.p_wrong,
                                                  answered & keep & ~pool.ood) > ALPHA
        violations["in scope, realised"] += risk(wrong, answered & keep) > ALPHA
        violations["all served"] += risk(pool.p_wrong, answered) > ALPHA
    freq = {k: v / REPS for k, v in violations.items()}
    se = np.sqrt(DELTA * (1 - DELTA) / REPS)
    print(f"scope promise: {REPS} resamples in {time.perf_counter() - start:.1f} s; threshold "
          f"in {found}; violation frequency {freq} (bound {DELTA + 3 * se:.4f}); "
          f"out-of-domain passing the scope test {np.mean(passed_ood):.4f} (max "
          f"{np.max(passed_ood):.4f}); in-domain passing {np.mean(passed_in):.4f}; in-domain "
          f"coverage {np.mean(coverage):.3f}")
    assert found > REPS / 2, found  # the promise is not vacuous: most resamples certify
    for k in ("in scope", "in scope, in-domain", "in scope, realised"):
        assert freq[k] <= DELTA + 3 * se, (k, freq)
    assert violations["in scope, in-domain"] > 0  # thresholds sit near the boundary
    # the scope test does its two jobs: it turns the bluffing traffic away, and turns
    # away at most `level` of the traffic drawn like the calibration set
    assert np.mean(passed_ood) < 0.01 and np.mean(passed_in) >= 1 - LEVEL - 0.01
    # without the filter the same thresholds break the promise: that is why it is filtered
    assert freq["all served"] > max(0.5, freq["in scope"] + 10 * se), freq
