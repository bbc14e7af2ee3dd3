"""Calibration: maps, Learn-then-Test thresholds, the artifact, and the replay of the cascade."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.calibration.artifact import ArtifactSpec, CalibratedModel, load_artifact, save_artifact
from service.calibration.build import build_artifact, split
from service.calibration.pinning import serving_settings
from service.calibration.simulate import Replay, decide, replay
from service.calibration.thresholds import binomial_p_value, ltt_threshold
from service.config import Settings
from service.errors import BadRequest
from tests.unit.calib_synth import synthetic_records

MODEL = "SmolLM2-135M-Instruct"
# the serving settings the unit tests' servers run with (tests/unit/test_calibration_api.py)
SERVING = serving_settings(Settings(samples_n=4))


def make_spec(n: int = 900, seed: int = 0, delta: float = 0.1, **kw: object) -> ArtifactSpec:
    kw.setdefault("settings", SERVING)
    return build_artifact(synthetic_records(n, seed), dataset="synthetic", seed=seed,
                          delta=delta, holdout=0.3, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def spec() -> ArtifactSpec:
    return make_spec()


def test_split_is_disjoint_and_seeded() -> None:
    recs = synthetic_records(100)
    a, b = split(recs, 3, 0.3), split(recs, 3, 0.3)
    ids = [r.id for part in a.values() for r in part]
    assert len(ids) == len(set(ids)) == 100 and len(a["heldout"]) == 30
    assert [r.id for r in a["test"]] == [r.id for r in b["test"]]


def test_maps_are_plain_json_and_informative(spec: ArtifactSpec) -> None:
    raw = json.loads(json.dumps(spec.model_dump()))  # no pickles, only JSON numbers
    assert raw["maps"][0]["method"] == "platt" or raw["maps"][0]["method"] == "isotonic"
    model = CalibratedModel(spec)
    hi = {"token_entropy": 0.0, "mean_nll": 0.0, "min_token_prob": 1.0, "n_tokens": 4}
    lo = {"token_entropy": 1.5, "mean_nll": 1.0, "min_token_prob": 0.0, "n_tokens": 4}
    assert model.confidence(0, hi) > model.confidence(0, lo) + 0.3
    assert 0.0 <= model.confidence(3, lo) <= 1.0  # missing later features are imputed
    assert spec.heldout["auroc"] > 0.7 and spec.heldout["ece"] < 0.15


def test_policy_table_and_target_risk(spec: ArtifactSpec) -> None:
    model = CalibratedModel(spec)
    rows = model.supported(3)
    assert rows, "synthetic data should support some alpha"
    choice = model.policy(None, 3)
    assert choice.target_risk == spec.default_alpha or choice.target_risk is None
    choice = model.policy(0.27, 3)
    pol, honoured = choice.policy, choice.target_risk
    assert honoured is not None and honoured <= 0.27
    assert pol.answer_threshold == next(e.threshold for e in rows if e.alpha == honoured)
    assert pol.abstain_threshold <= pol.answer_threshold and pol.max_stage == 3
    with pytest.raises(BadRequest) as err:
        model.policy(0.001, 3)
    assert err.value.param == "policy.target_risk"


def test_heldout_risk_within_promise(spec: ArtifactSpec) -> None:
    for row in spec.heldout["risk"]:  # a single draw; the guarantee is tested below
        assert row["realised_risk"] <= row["alpha"] + 0.1


def test_ltt_violation_frequency_is_at_most_delta() -> None:
    """Calibrated scores c ~ U(0,1), P(correct | c) = c: the risk of answering c >= t is
    (1 - t) / 2 exactly, so each resample's chosen threshold is checked against the truth."""
    alpha, delta, n, reps = 0.2, 0.1, 300, 400
    rng = np.random.default_rng(7)
    violations, found = 0, 0
    for _ in range(reps):
        c = rng.uniform(size=n)
        y = rng.uniform(size=n) < c
        conf = np.full((n, 4), np.nan)
        conf[:, 0] = c
        rp = Replay(conf, ~np.isnan(conf), np.zeros(n, bool), y)
        choice = ltt_threshold(rp, alpha, delta, 0.0, 0)
        if choice.threshold is not None:
            found += 1
            violations += (1 - choice.threshold) / 2 > alpha
    se = np.sqrt(delta * (1 - delta) / reps)
    assert found > reps * 0.8, found
    assert violations / reps <= delta + 3 * se, (violations, found)
    assert violations > 0 or found == reps  # not vacuous: thresholds sit near the boundary


def test_binomial_p_value() -> None:
    assert binomial_p_value(0, 0, 0.1) == 1.0
    assert binomial_p_value(0, 100, 0.1) < 1e-4
    assert binomial_p_value(10, 100, 0.1) > 0.5


def test_decide_respects_homogeneous_fallback_and_early_abstain() -> None:
    conf = np.array([[0.5, 0.5, 0.9, 0.9], [0.1, 0.9, 0.9, 0.9], [0.5, np.nan, 0.7, 0.7]])
    rp = Replay(conf, ~np.isnan(conf), np.zeros(3, bool), np.ones(3, bool))
    out = decide(rp, 0.8, 0.2, 3)
    assert out.answered.tolist() == [True, False, False]  # row 1 abstains early at stage 0
    assert out.stage.tolist() == [2, 0, 3]
    assert decide(rp, 0.8, 0.2, 1).answered.tolist() == [False, False, False]


def test_artifact_round_trip(tmp_path: Path, spec: ArtifactSpec) -> None:
    path = tmp_path / "a.json"
    save_artifact(spec, path)
    model = load_artifact(path, expected_model=MODEL)
    rec = synthetic_records(5, 99)
    a = replay(rec, model).conf
    b = replay(rec, CalibratedModel(spec)).conf
    assert np.allclose(a, b, equal_nan=True)
    assert model.describe()["calibrated"] is True


def test_homogeneous_questions_are_fitted_when_the_data_say_they_mean_something() -> None:
    """On a model whose single-cluster answers are nearly always right (SmolLM2 on the
    ladder: 22 of 22), `homogeneous: fitted` lets the maps learn it; `fallback` keeps the
    stage-0 confidence for them (the uncalibrated rule) and so ranks worse."""
    import dataclasses

    from service.labelled import quality

    def records(n: int, seed: int) -> list:
        out = []
        for r in synthetic_records(n, seed, homogeneous_rate=0.3):
            if r.signals["homogeneous"]:  # single cluster: right, whatever stage 0 says
                r = dataclasses.replace(r, correct=True)
            out.append(r)
        return out

    fit_on, held = records(900, 3), records(400, 4)
    aucs = {}
    for mode in ("fitted", "fallback"):
        spec = build_artifact(fit_on, dataset="synthetic", settings=SERVING, seed=0, delta=0.1,
                              holdout=0.3, homogeneous=mode)
        model = CalibratedModel(spec)
        assert model.fits_homogeneous is (mode == "fitted")
        final = replay(held, model).final(1)  # after stage 1 (stage 3's map sees all rows)
        aucs[mode] = quality.auroc(final, np.array([r.correct for r in held]))
        homog = np.array([bool(r.signals["homogeneous"]) for r in held])
        if mode == "fitted":
            assert final[homog].mean() > 0.8, final[homog].mean()
    assert aucs["fitted"] > aucs["fallback"] + 0.03, aucs
