"""CI-sized calibration on the real engine: arithmetic ladder through the session server
(stage 0 only, to fit the CI budget), held-out guarantee check, then a second server
started with the artifact abstains by it; a bad artifact stops ``candor serve``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from scipy.stats import binom

from service.calibration.artifact import ArtifactSpec, save_artifact
from service.calibration.build import build_artifact
from service.calibration.collect import CollectSettings, collect
from service.calibration.pinning import ServingSettings
from service.calibration.records import to_records
from service.labelled.ladder import arithmetic_ladder
from service.offline.collection import fetch_serving
from service.signals.embedder import Embedder
from tests.integration.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.integration

# Greedy-only (stage 0) ladder of 1- and 2-digit rungs, a few hundred questions: this CPU
# decodes ~8-10 tokens/s per sequence, batching lifts that (timed runs: docs/results.md).
N_QUESTIONS = 240
CFG = CollectSettings(max_tokens=12, max_stage=0, concurrency=24)
ALPHAS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


@pytest.fixture(scope="module")
def ci_artifact(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> ArtifactSpec:
    items = arithmetic_ladder(N_QUESTIONS, seed=0, max_digits=2)
    cache = tmp_path_factory.mktemp("calib") / "ladder.jsonl"
    serving = ServingSettings.model_validate(
        {**fetch_serving(live_server.url), "answer_max_tokens": CFG.max_tokens})
    cfg = replace(CFG, serving=serving.fingerprint())
    responses = asyncio.run(collect(items, live_server.url, cache, cfg, progress=False))
    records = to_records(items, responses, None)
    return build_artifact(records, dataset="ladder", settings=serving, seed=0, delta=0.1,
                          holdout=0.3, alphas=ALPHAS, default_alpha=0.5,
                          collect={"max_tokens": CFG.max_tokens, "max_stage": 0},
                          embed=Embedder().encode_sync)  # the scope test as candor's CLI fits it


@pytest.fixture(scope="module")
def calibrated_server(ci_artifact: ArtifactSpec,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("calibrated")
    path = tmp / "artifact.json"
    save_artifact(ci_artifact, path)
    server = start_server(tmp, {"CANDOR_CALIBRATION": str(path)})
    yield server
    stop_server(server)


def test_uncalibrated_server_says_so(api: httpx.Client) -> None:
    body = api.get("/v1/calibration").json()
    assert body["calibrated"] is False and "uncalibrated" in body["message"]


def test_ci_calibration_holds_on_heldout(ci_artifact: ArtifactSpec) -> None:
    held = ci_artifact.heldout
    assert 0.05 < held["accuracy"] < 0.95, "the ladder must mix right and wrong answers"
    assert held["auroc"] is not None and held["auroc"] > 0.5
    # calibrated: a constant or uncalibrated score would be off by ~0.5 on this base rate
    assert held["ece"] is not None and held["ece"] < 0.25, held
    assert held["risk"], f"no alpha supported: {ci_artifact.thresholds['0']}"
    assert ci_artifact.default_supported, ci_artifact.thresholds["0"]
    default = next(r for r in held["risk"] if r["alpha"] == ci_artifact.default_alpha)
    assert default["realised_risk"] <= default["alpha"], default  # the server's promise
    for row in held["risk"]:  # every entry: held-out errors consistent with risk <= alpha
        m = row["answered"]
        assert round(row["realised_risk"] * m) <= binom.ppf(1 - ci_artifact.delta, m, row["alpha"])


def test_calibrated_server_reports_and_abstains(calibrated_server: LiveServer,
                                                ci_artifact: ArtifactSpec) -> None:
    with calibrated_server.client() as c:
        info = c.get("/v1/calibration").json()
        assert info["calibrated"] and info["id"] == ci_artifact.id
        # the artifact pins the engine's own chat template, checked when it started
        assert info["settings"]["chat_template"] == info["serving"]["chat_template"]
        assert info["settings"]["chat_template"] is not None
        # drawn like the calibration set (1- and 2-digit rungs): in its scope, bar the few
        # a scope test at level 0.05 turns away by design
        hard = [it for it in arithmetic_ladder(24, seed=5) if it.meta["digits"] == "2"]
        easy = [it for it in arithmetic_ladder(24, seed=5) if it.meta["digits"] == "1"]
        decisions, in_scope = [], 0
        for it in easy[:3] + hard[:5]:
            r = c.post("/v1/answer", json={"question": it.question, "max_tokens": 12,
                                           "policy": {"max_stage": 0}})
            assert r.status_code == 200, r.text
            b = r.json()
            assert b["calibrated"] and b["calibration"]["id"] == ci_artifact.id
            if not b["scope"]["in_scope"]:
                assert b["calibration"]["reason"].startswith("out_of_scope:"), b
                continue
            in_scope += 1
            assert b["calibration"]["target_risk"] == ci_artifact.default_alpha, b["calibration"]
            if b["abstained"]:
                assert b["reason"] in ("low_confidence", "hopeless") and b["answer"].strip()
            decisions.append(b["decision"])
        assert in_scope >= 6 and "abstain" in decisions
        far = c.post("/v1/answer", json={"question": "What is 4821 x 3907 - 1234 x 5678?",
                                         "max_tokens": 12, "policy": {"max_stage": 0}}).json()
        assert far["reason"] == "out_of_scope" and far["calibration"]["target_risk"] is None
        low = c.post("/v1/answer", json={"question": "What is 1 + 1?", "max_tokens": 8,
                                         "policy": {"max_stage": 0, "target_risk": 0.001}})
        assert low.status_code == 400 and low.json()["error"]["param"] == "policy.target_risk"
        # outside the pinned settings (another max_tokens): answered, but nothing promised
        other = c.post("/v1/answer", json={"question": "What is 2 + 2?", "max_tokens": 8,
                                           "policy": {"max_stage": 0}}).json()
        assert other["calibration"]["target_risk"] is None
        assert other["calibration"]["reason"].startswith(
            "settings: max_tokens=8" if other["scope"]["in_scope"] else "out_of_scope:")


@pytest.mark.parametrize("change, needle", [
    ({"model": "other"}, "fitted for model 'other'"),
    ({"settings": {"samples_n": 3}}, "samples_n: calibrated 3, serving 10"),
    ({"settings": {"sample_temperature": 0.9}}, "sample_temperature: calibrated 0.9, serving 0.4"),
])
def test_bad_artifact_stops_serve(tmp_path: Path, ci_artifact: ArtifactSpec,
                                  change: dict[str, object], needle: str) -> None:
    data = json.loads(ci_artifact.model_dump_json())
    for key, value in change.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    exe = Path(sys.executable).with_name("candor")
    proc = subprocess.run([str(exe), "serve", "--port", "0"], capture_output=True, text=True,
                          env={"CANDOR_CALIBRATION": str(bad), "PATH": "/usr/bin:/bin",
                               "HOME": str(Path.home())},
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
