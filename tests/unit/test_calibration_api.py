"""The server side of calibration on a fake engine: loading, abstaining, /v1/calibration,
bad artifacts at startup, and the offline replay matching the runner decision for decision."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.calibration.artifact import ArtifactSpec, load_artifact, save_artifact
from service.calibration.records import from_response
from service.calibration.simulate import decide, replay
from service.config import Settings
from service.errors import CalibrationError
from service.labelled.datasets import Item
from service.main import create_app
from service.state import CandorState
from tests.fakes import FakeEmbedder, FakeEngine, Script
from tests.unit.test_calibration import MODEL, SERVING, make_spec

SCRIPTS = {  # from sure (sharp, low NLL, agreeing samples) to unsure (flat, diverse)
    f"k{i:02d}": Script(greedy=f"The answer is {i % 4}", logprob=-0.02 - 0.15 * i,
                        top=(-0.02 - 0.1 * i, -4.0 + 0.25 * i, -5.0 + 0.3 * i),
                    samples=[str(i % 4), str(i % 3), str(i % 4), "9"] if i % 3 else None)
    for i in range(14)
}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "artifact.json"
    save_artifact(make_spec(600, seed=1), path)
    return path


def client_for(artifact: Path | None) -> TestClient:
    s = Settings(samples_n=4, calibration=artifact)
    return TestClient(create_app(s, engine=FakeEngine(scripts=SCRIPTS), embedder=FakeEmbedder()),
                      raise_server_exceptions=False)


@pytest.fixture
def calibrated(artifact: Path) -> Iterator[TestClient]:
    with client_for(artifact) as c:
        yield c


def test_calibration_endpoint_says_uncalibrated_without_artifact() -> None:
    with client_for(None) as c:
        body = c.get("/v1/calibration").json()
        assert body["calibrated"] is False and "uncalibrated" in body["message"]
        assert c.post("/v1/answer", json={"question": "k01"}).json()["calibrated"] is False


def test_calibration_endpoint_reports_the_artifact(calibrated: TestClient) -> None:
    body = calibrated.get("/v1/calibration").json()
    assert body["calibrated"] is True and body["model"] == MODEL and body["delta"] == 0.1
    assert body["supported"]["3"] and "probability" in body["promise"]


def test_calibrated_answers_carry_the_promise_or_abstain(calibrated: TestClient) -> None:
    seen = set()
    for key in SCRIPTS:
        r = calibrated.post("/v1/answer", json={"question": key, "policy": {"target_risk": 0.3}})
        assert r.status_code == 200
        b = r.json()
        assert b["calibrated"] and b["calibration"]["target_risk"] <= 0.3
        if b["abstained"]:
            assert b["reason"] in ("low_confidence", "hopeless") and b["answer"]  # still there
        seen.add(b["decision"])
    assert seen == {"answer", "abstain"}


def test_target_risk_below_support_is_a_400(calibrated: TestClient) -> None:
    r = calibrated.post("/v1/answer", json={"question": "k01", "policy": {"target_risk": 1e-4}})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "policy.target_risk"


def test_replay_matches_the_runner(calibrated: TestClient, artifact: Path) -> None:
    """Collect with run_all, replay offline, and compare with what the server decides."""
    model = load_artifact(artifact)
    for hi, lo in ((0.9, 0.3), (0.6, 0.1), (0.5, 0.45)):
        recs, live = [], []
        for key in SCRIPTS:
            body = {"question": key, "policy": {"run_all": True, "max_stage": 3}}
            full = calibrated.post("/v1/answer", json=body).json()
            recs.append(from_response(Item(key, key, "0", "numeric"), full, True))
            pol = {"answer_threshold": hi, "abstain_threshold": lo}
            live.append(calibrated.post("/v1/answer", json={"question": key, "policy": pol}).json())
        out = decide(replay(recs, model), hi, lo, model.decision_stage)
        assert out.answered.tolist() == [not b["abstained"] for b in live], (hi, lo)
        assert out.stage.tolist() == [b["stage_reached"] for b in live], (hi, lo)


def _write(tmp: Path, data: object) -> Path:
    p = tmp / "bad.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: "{not json", "not valid JSON"),
    (lambda d: {k: v for k, v in d.items() if k != "thresholds"}, "thresholds"),
    (lambda d: {**d, "maps": d["maps"][:2]}, "maps"),
    (lambda d: {**d, "version": 99}, "version"),
    (lambda d: {**d, "model": "gpt-5"}, "fitted for model 'gpt-5'"),
    (lambda d: [1, 2], "not a Candor calibration artifact"),
])
def test_bad_artifacts_fail_at_startup(tmp_path: Path, artifact: Path, mutate: object,
                                       needle: str) -> None:
    good = json.loads(artifact.read_text())
    path = _write(tmp_path, mutate(good))  # type: ignore[operator]
    with pytest.raises(CalibrationError, match=needle):
        CandorState.build(Settings(calibration=path))
    with pytest.raises(CalibrationError, match=needle):
        create_app(Settings(calibration=path), engine=FakeEngine())


def test_missing_artifact_file_fails(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="cannot read"):
        CandorState.build(Settings(calibration=tmp_path / "nope.json"))


def test_spec_schema_is_versioned() -> None:
    assert ArtifactSpec.model_fields["version"].annotation is not None


@pytest.mark.parametrize("audited", [True, False])
def test_calibrate_from_decision_log(tmp_path: Path, audited: bool) -> None:
    """``candor calibrate --from-log``: labelled decision-log rows -> a loadable artifact,
    with a guarantee only when the labels are the audit sample."""
    import sqlite3

    from service.decisions.table import SCHEMA
    from service.main import cli
    from tests.unit.calib_synth import synthetic_records

    db = tmp_path / "log.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA)
    for i, r in enumerate(synthetic_records(400, 4)):
        stages = [{"name": f"s{k}", "stage": k, "confidence": 0.5, "ms": 1.0, "tokens": 1,
                   "informative": r.informative[k]} for k in range(4)]
        conn.execute("INSERT INTO decisions (id, ts, model, signals, stages, label, audit, "
                     "serving) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (r.id, float(i), MODEL, json.dumps(r.signals), json.dumps(stages),
                      int(r.correct), int(audited), SERVING.model_dump_json()))
    conn.commit()
    conn.close()
    out = tmp_path / "from-log.json"
    assert cli(["calibrate", "--from-log", str(db), "--out", str(out)]) == 0
    model = load_artifact(out, expected_model=MODEL)
    assert model.spec.dataset == "decision-log" and model.spec.n == 400
    assert model.spec.settings == SERVING
    assert model.spec.guarantee is audited and model.spec.labels == (
        "audit" if audited else "self-selected")
    choice = model.policy(None, 3)
    if not audited:  # maps, but no promise: the answer says why
        assert choice.target_risk is None and choice.reason.startswith("no_guarantee:")
