"""Audit sampling: a uniform random share of all decisions, run to the last stage for the
record, flagged in the response and the log; only their labels certify (``--from-log``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from scipy.stats import binom

from service.calibration.artifact import CalibratedModel
from service.calibration.build import build_artifact
from service.calibration.features import stage_features, vectorise
from service.calibration.records import Record
from service.calibration.simulate import Replay, decide
from service.config import Settings
from service.decisions.table import SCHEMA, labelled_entries
from service.main import create_app
from service.offline.calibrate import from_log
from service.vocab import MAX_CONFIDENCE
from tests.fakes import FakeEmbedder, FakeEngine
from tests.unit.test_calibration import SERVING
from tests.unit.test_calibration_api import SCRIPTS


def client(tmp: Path, **s: object) -> TestClient:
    settings = Settings(samples_n=4, decision_log=tmp / "log.sqlite", **s)  # type: ignore[arg-type]
    app = create_app(settings, engine=FakeEngine(scripts=SCRIPTS), embedder=FakeEmbedder())
    return TestClient(app, raise_server_exceptions=False)


def test_audited_decisions_run_every_stage_and_decide_as_the_policy(tmp_path: Path) -> None:
    with client(tmp_path, audit_rate=1.0) as audited, client(tmp_path / "b") as plain:
        for key in SCRIPTS:
            a = audited.post("/v1/answer", json={"question": key}).json()
            p = plain.post("/v1/answer", json={"question": key}).json()
            assert a["audit"] is True and a["audit_rate"] == 1.0 and p["audit"] is False
            # the decision is the sequential policy's; the record holds every stage
            assert (a["decision"], a["stage_reached"], a["confidence"]) == (
                p["decision"], p["stage_reached"], p["confidence"])
            assert [s["stage"] for s in a["stages"]] == [0, 1, 2, 3]
            late = [s for s in a["stages"] if s["stage"] > a["stage_reached"]]
            assert all("audit: ran after the decision" in (s["note"] or "") for s in late)


def test_the_chat_uncertainty_object_carries_the_audit_flag(tmp_path: Path) -> None:
    with client(tmp_path, audit_rate=1.0) as c:
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user",
                                                               "content": "k02"}]})
        assert r.status_code == 200 and r.json()["uncertainty"]["audit"] is True


def test_audit_is_a_uniform_draw_at_the_configured_rate(tmp_path: Path) -> None:
    n, rate = 300, 0.3
    with client(tmp_path, audit_rate=rate) as c:
        flags = [c.post("/v1/answer", json={"question": "k01", "policy": {"max_stage": 0}}
                        ).json()["audit"] for _ in range(n)]
    lo, hi = binom.ppf(0.0005, n, rate), binom.ppf(0.9995, n, rate)
    assert lo <= sum(flags) <= hi, sum(flags)


def test_feedback_says_whether_the_label_is_from_the_audit(tmp_path: Path) -> None:
    with client(tmp_path, audit_rate=0.0, admin_keys="adm") as c:
        admin = {"Authorization": "Bearer adm"}
        plain = c.post("/v1/answer", json={"question": "k01"}, headers=admin).json()["id"]
        sampled = c.post("/v1/answer", json={"question": "k02", "policy": {"audit_rate": 1.0}},
                         headers=admin).json()["id"]
        fb = c.post("/v1/feedback", json={"id": plain, "correct": True}, headers=admin).json()
        assert fb["audited"] is False
        assert c.post("/v1/feedback", json={"id": sampled, "correct": False},
                      headers=admin).json() == {"id": sampled, "stored": True, "audited": True}
        metrics = c.get("/metrics").text
        assert 'candor_feedback_total{audited="true"} 1.0' in metrics
        assert 'candor_feedback_total{audited="false"} 1.0' in metrics
    rows = {e["id"]: e for e in labelled_entries(tmp_path / "log.sqlite")}
    assert rows[sampled]["audit"] is True and rows[plain]["audit"] is False
    assert json.loads(rows[sampled]["serving"])["samples_n"] == 4


# -- the audited --from-log path -------------------------------------------------------------
def latent_records(n: int, rng: np.random.Generator) -> tuple[list[Record], np.ndarray]:
    """Stage-0 records whose signals are noisy views of a latent P(correct) q (returned)."""
    q = rng.uniform(0.05, 0.98, n)
    recs = []
    for i in range(n):
        noise = rng.normal(0, 0.15, 3)
        signals = {"token_entropy": max(0.0, 1.5 * (1 - q[i]) + noise[0]),
                   "mean_nll": max(0.0, 1.0 - q[i] + noise[1]),
                   "min_token_prob": float(np.clip(q[i] + noise[2], 0, 1)), "n_tokens": 4.0}
        recs.append(Record(f"r{i}", bool(rng.uniform() < q[i]), "x", signals,
                           [True, False, False, False], [True, False, False, False]))
    return recs, q


def write_log(path: Path, audited: list[Record], others: list[Record]) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    for audit, recs in ((1, audited), (0, others)):
        for i, r in enumerate(recs):
            stages = [{"name": "token", "stage": 0, "confidence": 0.5, "ms": 1.0, "tokens": 4,
                       "informative": True}]
            conn.execute("INSERT INTO decisions (id, ts, model, signals, stages, label, audit,"
                         " serving) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (f"{audit}-{r.id}", float(i), SERVING.model, json.dumps(r.signals),
                          json.dumps(stages), int(r.correct), audit, SERVING.model_dump_json()))
    conn.commit()
    conn.close()


def test_from_log_uses_only_the_audited_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    audited, _ = latent_records(200, rng)
    reviewed, _ = latent_records(300, rng)
    for r in reviewed:  # people reviewed the doubtful ones: mostly wrong, a biased sample
        r.correct = False
    write_log(tmp_path / "log.sqlite", audited, reviewed)
    records, serving, labels = from_log(tmp_path / "log.sqlite")
    assert labels == "audit" and len(records) == 200 and serving == SERVING
    assert sum(r.correct for r in records) == sum(r.correct for r in audited)


def test_audited_from_log_keeps_the_guarantee_over_400_resamples(tmp_path: Path) -> None:
    """Fit + Learn-then-Test on audited log labels, 400 times; the truth of each chosen
    policy is its mean latent error on a large fresh pool."""
    reps, n, alpha, delta = 400, 280, 0.3, 0.1  # fit 140 (< ISOTONIC_MIN_N: Platt, fast)
    rng = np.random.default_rng(11)
    pool, q_pool = latent_records(4000, rng)
    names = list(stage_features(0))
    x_pool = np.array([vectorise(r.features(0), names) for r in pool])  # columns: names
    violations = found = 0
    for rep in range(reps):
        audited, _ = latent_records(n, rng)
        if rep < 3:  # the real read path, a few times (it is exact: tested above)
            path = tmp_path / f"log{rep}.sqlite"
            write_log(path, audited, [])
            audited, serving, labels = from_log(path)
            assert labels == "audit"
        spec = build_artifact(audited, dataset="decision-log", settings=SERVING, seed=rep,
                              delta=delta, holdout=0.0, alphas=[alpha], default_alpha=alpha,
                              labels="audit")
        model = CalibratedModel(spec)
        rows = model.supported(0)
        if not rows:
            continue
        found += 1
        t = rows[0].threshold
        assert t is not None
        stage_map = model.maps[0]
        assert stage_map is not None
        conf = np.full((len(pool), 4), np.nan)
        cols = [names.index(f) for f in stage_map.features]  # the inputs the map chose
        conf[:, 0] = np.minimum(MAX_CONFIDENCE, stage_map.prob(x_pool[:, cols]))  # capped
        rp = Replay(conf, ~np.isnan(conf), np.zeros(len(pool), bool), q_pool > 0.5)
        out = decide(rp, t, min(spec.abstain_threshold, t), 0)
        true_risk = float(np.mean(1 - q_pool[out.answered])) if out.answered.any() else 0.0
        violations += true_risk > alpha
    se = np.sqrt(delta * (1 - delta) / reps)
    print(f"audited from-log: threshold in {found}/{reps}, violation {violations / reps:.4f}")
    assert found > reps / 2
    assert violations / reps <= delta + 3 * se
