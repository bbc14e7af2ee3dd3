"""An audit sample no client can steer: the server draws it, an admin may only raise a
decision's rate (and the monitors thin it back), and mixed rates stay a uniform sample."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api.principal import fingerprint
from service.audit import audited, common_rate, draw, kept
from service.config import Settings
from service.decisions.table import SCHEMA, audit_counts
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine
from tests.unit.test_calibration_api import SCRIPTS
from tests.unit.test_promise import write

CLIENT, ADMIN = {"Authorization": "Bearer cli"}, {"Authorization": "Bearer adm"}
RISK = {"target_risk": 0.3}  # certified by the test artifact (its default 0.1 is not)


def client(tmp: Path, calibration: Path | None = None, **s: object) -> TestClient:
    settings = Settings(samples_n=4, decision_log=tmp / "log.sqlite", calibration=calibration,
                        api_keys="cli", admin_keys="adm", **s)  # type: ignore[arg-type]
    app = create_app(settings, engine=FakeEngine(scripts=SCRIPTS), embedder=FakeEmbedder())
    return TestClient(app, raise_server_exceptions=False)


def test_a_client_key_cannot_choose_which_decisions_are_audited(tmp_path: Path) -> None:
    """The finding: with the server's rate at 0, a client forced its answers into the audit
    sample and labelled them wrong until the verdict read "breached"."""
    artifact = write(tmp_path)
    with client(tmp_path, artifact, audit_rate=0.0, monitor_min_labels=5) as c:
        for chat in (False, True):
            body = ({"messages": [{"role": "user", "content": "k03"}]} if chat
                    else {"question": "k03"}) | {"policy": {**RISK, "audit_rate": 1.0}}
            r = c.post("/v1/chat/completions" if chat else "/v1/answer", json=body,
                       headers=CLIENT)
            assert r.status_code == 403, r.text
            err = r.json()["error"]
            assert err["param"] == "policy.audit_rate" and "admin key" in err["message"]
        for _ in range(18):  # what remains to a client: plain answers, "wrong" labels
            a = c.post("/v1/answer", json={"question": "k03", "policy": RISK},
                       headers=CLIENT).json()
            assert a["audit"] is False and a["calibration"]["target_risk"] == 0.3
            assert c.post("/v1/feedback", json={"id": a["id"], "correct": False},
                          headers=CLIENT).json()["audited"] is False
        report = c.get("/v1/calibration", headers=CLIENT).json()["profiles"]
        promises = [p for prof in report for p in prof["promises"]]
        assert promises and all(p["verdict"] == "unverified" and p["labelled"] == 0
                                and p["abstention"]["decisions"] == 0 for p in promises)


def test_an_admin_may_raise_a_rate_but_never_lower_it(tmp_path: Path) -> None:
    with client(tmp_path, audit_rate=0.2) as c:
        up = c.post("/v1/answer", json={"question": "k01", "policy": {"audit_rate": 1.0}},
                    headers=ADMIN).json()
        assert up["audit"] is True and up["audit_rate"] == 1.0
        down = c.post("/v1/answer", json={"question": "k01", "policy": {"audit_rate": 0.0}},
                      headers=ADMIN)
        assert down.status_code == 400 and down.json()["error"]["param"] == "policy.audit_rate"


def test_the_draw_is_a_function_of_the_server_made_id(tmp_path: Path) -> None:
    with client(tmp_path, audit_rate=0.5) as c:
        for _ in range(40):
            a = c.post("/v1/answer", json={"question": "k01", "policy": {"max_stage": 0}},
                       headers=CLIENT).json()
            assert a["audit"] is audited(a["id"], 0.5) and a["audit_rate"] == 0.5


def test_the_log_records_who_labelled(tmp_path: Path) -> None:
    with client(tmp_path, audit_rate=0.0) as c:
        ids = [c.post("/v1/answer", json={"question": "k01"}, headers=h).json()["id"]
               for h in (CLIENT, ADMIN)]
        for rid, h in zip(ids, (CLIENT, ADMIN), strict=True):
            assert c.post("/v1/feedback", json={"id": rid, "correct": True},
                          headers=h).status_code == 200
    conn = sqlite3.connect(tmp_path / "log.sqlite")
    who = dict(conn.execute("SELECT id, labeller FROM decisions").fetchall())
    conn.close()
    assert who == {ids[0]: f"key:{fingerprint(b'cli')}", ids[1]: f"key:{fingerprint(b'adm')}"}
    assert fingerprint(b"cli") not in ("cli", "adm") and len(fingerprint(b"cli")) == 12


# -- mixed rates: thinning keeps a uniform sample ------------------------------------------------
PERIODS = ((0.5, 0.1), (0.05, 0.5))  # (audit rate, error rate): a restart changed both


def test_the_draws_are_uniform_and_independent() -> None:
    ids = [uuid.uuid4().hex for _ in range(20000)]
    u = np.array([draw(i) for i in ids])
    assert abs(u.mean() - 0.5) < 0.01 and abs((u < 0.1).mean() - 0.1) < 0.01
    a = np.array([audited(i, 0.5) for i in ids])
    k = np.array([kept(i, 0.5, 0.05) for i in ids])
    assert abs(k[a].mean() - 0.1) < 0.015  # the thinning draw is independent of the audit one
    assert common_rate([None, 0.0, 0.3, 0.05]) == 0.05 and common_rate([0.0, None]) is None


def test_mixed_rates_are_thinned_to_an_unbiased_estimate_over_300_resamples() -> None:
    """Two periods of 2,000 decisions each, audited at 0.5 then 0.05, with error rates 0.1
    and 0.5 (truth 0.3). The raw audited mean leans on the heavily audited period (about
    0.14); the thinned one is unbiased."""
    rng = np.random.default_rng(3)
    raw, thin = [], []
    for _ in range(300):
        r_num = r_den = t_num = t_den = 0
        for rate, err in PERIODS:
            for _ in range(2000):
                rid = uuid.uuid4().hex
                if not audited(rid, rate):
                    continue
                wrong = rng.uniform() < err
                r_num, r_den = r_num + wrong, r_den + 1
                if kept(rid, rate, 0.05):
                    t_num, t_den = t_num + wrong, t_den + 1
        raw.append(r_num / r_den)
        thin.append(t_num / t_den if t_den else np.nan)
    est, se = np.nanmean(thin), np.nanstd(thin) / np.sqrt(np.sum(~np.isnan(thin)))
    assert abs(est - 0.3) < 4 * se + 0.005, (est, se)
    assert np.mean(raw) < 0.2  # the bias thinning removes


def test_restoring_the_monitors_thins_a_log_with_two_rates(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    rng = np.random.default_rng(5)
    n = {rate: 0 for rate, _ in PERIODS}
    for rate, err in PERIODS:
        for i in range(4000):
            rid = f"ans_{uuid.uuid4().hex[:24]}"
            audit = audited(rid, rate)
            n[rate] += audit and kept(rid, rate, 0.05)
            conn.execute(
                "INSERT INTO decisions (id, ts, decision, profile, calibration_id, target_risk,"
                " audit, audit_rate, label) VALUES (?, ?, 'answer', 'math', 'cal1', 0.3, ?, ?, ?)",
                (rid, time.time() + i, int(audit), rate,
                 int(rng.uniform() >= err) if audit else None))
    conn.commit()
    conn.close()
    (counts,) = audit_counts(path, current_rate=0.5)
    assert counts.common_rate == 0.05 and counts.labelled == sum(n.values())
    assert counts.errors / counts.labelled == pytest.approx(0.3, abs=0.12)
    assert abs(n[0.5] - n[0.05]) < 4 * np.sqrt(400)  # both periods weigh the same
    (lower,) = audit_counts(path, current_rate=0.01)  # a lower rate now: thinned further
    assert lower.common_rate == 0.01 and lower.labelled < counts.labelled


def test_the_live_monitor_thins_an_admins_raised_rate_back_to_the_servers(
        tmp_path: Path) -> None:
    """200 decisions an admin forced into the audit at rate 1 on a server auditing at 0.1:
    the monitor counts each with probability 0.1, as it would any other decision."""
    artifact = write(tmp_path)
    with client(tmp_path, artifact, audit_rate=0.1) as c:
        ids = [c.post("/v1/answer", json={"question": "k03", "policy": {
            **RISK, "audit_rate": 1.0}}, headers=ADMIN).json()["id"] for _ in range(200)]
        report = c.get("/v1/calibration", headers=CLIENT).json()["profiles"]
    watched = sum(p["abstention"]["decisions"] for prof in report for p in prof["promises"])
    assert watched == sum(kept(i, 1.0, 0.1) for i in ids)
    assert 5 <= watched <= 40  # Binomial(200, 0.1): 20 expected


def test_with_auditing_off_an_admins_audits_are_the_sample(tmp_path: Path) -> None:
    """CANDOR_AUDIT_RATE=0: the decisions an admin sends to the audit (e.g. a calibration
    run) are the only sample there is, and all of them count."""
    artifact = write(tmp_path)
    with client(tmp_path, artifact, audit_rate=0.0) as c:
        for _ in range(12):
            a = c.post("/v1/answer", json={"question": "k03", "policy": {
                **RISK, "audit_rate": 1.0}}, headers=ADMIN).json()
            c.post("/v1/feedback", json={"id": a["id"], "correct": False}, headers=ADMIN)
        report = c.get("/v1/calibration", headers=CLIENT).json()["profiles"]
    (watched,) = [p for prof in report for p in prof["promises"] if p["target_risk"] == 0.3]
    assert watched["abstention"]["decisions"] == 12
    assert watched["labelled"] == watched["errors"] == 12 - watched["abstention"]["abstained"]
