"""The promise watched live on the real engine (session server, stage 0, <= 12 tokens):
the loop (audited labels -> ``candor calibrate --from-log`` -> hot reload) starts the new
promise ``unverified``; audited answers + feedback move it to a verdict; the input
drift statistic reacts when the question mix moves from the calibration's (1- and 4-digit
ladder questions) to 4-digit only; a corrupt or foreign artifact is refused and the good
one stays."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.docs_commands import REPO, doc_commands
from tests.integration.conftest import ADMIN, LiveServer
from tests.integration.live_promise import MIX, LivePromise, active_profile, ask_and_label, ladder
from tests.integration.test_docs_commands import run

pytestmark = pytest.mark.integration


def test_the_reloaded_promise_starts_unverified(live_promise: LivePromise) -> None:
    after = live_promise.after_reload
    assert after["calibrated"] and after["id"] == live_promise.artifact_id
    assert after["labels"] == "audit" and after["guarantee"] is True
    (live,) = [p for p in after["profiles"] if p["active"]]
    assert live["calibration_id"] == live_promise.artifact_id and live["target_risk"] == 0.9
    assert live["verdict"] == "unverified" and live["labelled"] == 0
    assert live["drift"] is not None  # the artifact carries its reference
    print(f"\nLIVE_PROMISE_SECONDS {json.dumps(live_promise.seconds)}")


def test_audited_feedback_gives_a_verdict_and_drift_reacts(live_promise: LivePromise,
                                                            api: httpx.Client) -> None:
    before = active_profile(api)
    same_mix = ladder(14, 33, MIX)  # drawn like the calibration set
    got = ask_and_label(api, same_mix)
    assert all(b["calibration"]["id"] == live_promise.artifact_id for b, _ in got)
    promised = [(b, c) for b, c in got if b["calibration"]["target_risk"] is not None]
    answered = [(b, c) for b, c in promised if b["decision"] == "answer"]
    mid = active_profile(api)
    assert mid["labelled"] - before["labelled"] == len(answered)
    assert mid["errors"] - before["errors"] == sum(1 for _, c in answered if not c)
    assert mid["labelled"] >= 10, "min_labels (CANDOR_MONITOR_MIN_LABELS=10) not reached"
    assert mid["verdict"] in ("holding", "breached")
    assert mid["lower"] <= mid["estimate"] <= mid["upper"]
    same = input_psis(mid["drift"])
    assert same["confidence"] is not None and len(same) > 1, same

    hard = ladder(16, 34, ("4",))  # the mix moves: 4-digit questions only
    ask_and_label(api, hard)
    end = active_profile(api)
    moved = input_psis(end["drift"])
    print("\nDRIFT psi same mix -> 4 digits only: "
          + ", ".join(f"{k} {same[k]:.3f} -> {moved[k]:.3f}" for k in moved)
          + f" (threshold {end['drift']['threshold']}, window {end['drift']['window']}); "
          f"verdict {mid['verdict']} at {mid['labelled']} labels, estimate {mid['estimate']:.2f} "
          f"[{mid['lower']:.2f}, {mid['upper']:.2f}]")
    top = max(moved, key=lambda k: moved[k])  # the input that moved most
    assert moved[top] > end["drift"]["threshold"] and moved[top] > same[top], (same, moved)
    assert end["drift"]["drift"] is True
    metrics = api.get("/metrics").text
    assert (f'candor_drift_psi{{calibration_id="{live_promise.artifact_id}",profile="default",'
            f'signal="confidence"}}') in metrics
    assert 'candor_promise_verdict{' in metrics
    assert f'signal="{top}"' in metrics


def input_psis(drift: dict[str, Any]) -> dict[str, float]:
    """PSI of the stage-0 confidence and of each raw stage-0 signal (the drift inputs)."""
    out = {"confidence": drift["confidence"]["psi"]}
    out.update({k: v["psi"] for k, v in drift["signals"].items()})
    return out


def test_reload_refuses_bad_artifacts_and_keeps_the_good_one(live_promise: LivePromise,
                                                             api: httpx.Client,
                                                             tmp_path: Path) -> None:
    cal = live_promise.artifact.parent  # the server's CANDOR_CALIBRATION_DIR
    corrupt = cal / "corrupt.json"
    corrupt.write_text(live_promise.artifact.read_text()[:200])  # truncated on write
    foreign = cal / "foreign.json"
    foreign.write_text(json.dumps({**json.loads(live_promise.artifact.read_text()),
                                   "model": "another-model"}))
    for path, needle in ((corrupt, "not valid JSON"), (foreign, "fitted for model")):
        r = api.post("/v1/admin/calibration/reload", json={"source": path.name},
                     headers=ADMIN)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "calibration_error"
        assert needle in r.json()["error"]["message"]
        assert api.get("/v1/calibration").json()["id"] == live_promise.artifact_id
    body = api.post("/v1/answer", json={"question": "What is 2 + 2?", "max_tokens": 12,
                                        "policy": {"max_stage": 0}}).json()
    assert body["calibration"]["id"] == live_promise.artifact_id
    again = api.post("/v1/admin/calibration/reload",  # (no body would re-read builtin)
                     json={"source": live_promise.artifact.name}, headers=ADMIN)
    assert again.status_code == 200, again.text
    assert list(again.json()["profiles"].values()) == [live_promise.artifact_id]
    assert again.json()["changed"] is False and len(again.json()["unchanged"]) == 1


def test_from_log_commands(live_promise: object, live_server: LiveServer,
                           tmp_path: Path) -> None:
    """(Here, not in test_docs_commands.py: it needs the recalibrated session server, which
    the tests before this module expect uncalibrated.) docs/calibration.md's and
    docs/operations.md's `candor calibrate --from-log
    ~/.cache/candor/decisions.sqlite ...`, as written, on a copy of the session server's
    decision log (audited, labelled by the recalibration loop) at that path under a
    scratch HOME."""
    import sqlite3

    lines = [c.line for c in doc_commands() if "--from-log" in c.line]
    assert len(lines) == 2, lines
    home = tmp_path / "home"
    (home / ".cache" / "candor").mkdir(parents=True)
    with sqlite3.connect(live_server.env["CANDOR_DECISION_LOG"]) as src, \
            sqlite3.connect(home / ".cache" / "candor" / "decisions.sqlite") as dst:
        src.backup(dst)  # a consistent copy of a log the server is writing
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDOR_")}
    env.update(HOME=str(home), PATH=f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}")
    for line in lines:
        out = json.loads(run(line, tmp_path, env, 300))
        spec = json.loads((tmp_path / out["artifact"]).read_text())
        assert spec["labels"] == "audit" and spec["guarantee"] is True, spec["labels"]
