"""The recalibration loop on the real engine, once per session (fixture ``live_promise``).

Audited ladder questions, 1- and 4-digit interleaved (the model gets about 70% of the
1-digit ones right and no 4-digit one, docs/results.md: a clear signal for a map fitted on
a few dozen labels), are asked through the session server and labelled by the grader over
``POST /v1/feedback``; then
``candor calibrate --from-log`` fits an artifact from those audited labels into the
server's CANDOR_CALIBRATION_DIR, and ``POST /v1/admin/calibration/reload`` (with the admin
key) swaps it in. Stage 0 only, <= 12 tokens.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.labelled.grading import grade
from service.labelled.items import Item
from tests.integration.conftest import ADMIN, LiveServer

N_CALIBRATION = 64  # its fit split's reference half (11) lets a scope test reject at 0.1
MAX_TOKENS = 12
AUDITED = {"max_stage": 0, "audit_rate": 1.0}  # an admin's override (ADMIN headers)
MIX = ("1", "4")  # the calibration set's question mix


@dataclass
class LivePromise:
    artifact: Path
    artifact_id: str
    log: Path
    after_reload: dict[str, Any]  # GET /v1/calibration right after the reload
    seconds: dict[str, float]


def label(api: httpx.Client, rid: str, correct: bool) -> httpx.Response:
    """POST /v1/feedback as a well-behaved client: a 429 (the feedback pool is full) is
    retried after its Retry-After."""
    for _ in range(30):
        fb = api.post("/v1/feedback", json={"id": rid, "correct": correct})
        if fb.status_code != 429:
            return fb
        time.sleep(float(fb.headers.get("retry-after", "1")))
    return fb


def ask_and_label(api: httpx.Client, items: list[Item], policy: dict[str, object] | None = None,
                  workers: int = 16) -> list[tuple[dict[str, Any], bool]]:
    """Ask every item (audited), label each answer by the grader; (response, correct)."""
    def one(it: Item) -> tuple[dict[str, Any], bool]:
        r = api.post("/v1/answer", json={"question": it.question, "max_tokens": MAX_TOKENS,
                                          "policy": policy or AUDITED}, headers=ADMIN)
        assert r.status_code == 200, r.text
        body = r.json()
        correct = grade(it, body["answer"])
        fb = label(api, body["id"], correct)
        assert fb.status_code == 200 and fb.json()["audited"] is True, fb.text
        return body, correct

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, items))


def active_profile(api: httpx.Client) -> dict[str, Any]:
    profiles = api.get("/v1/calibration").json()["profiles"]
    active = [p for p in profiles if p["active"]]
    assert len(active) == 1, profiles
    return dict(active[0])


def ladder(n: int, seed: int, digits: tuple[str, ...]) -> list[Item]:
    """``n`` seeded ladder questions with these digit counts (the rungs stay interleaved)."""
    from service.labelled.ladder import arithmetic_ladder

    items = [it for it in arithmetic_ladder(4 * n * 4, seed) if it.meta["digits"] in digits]
    return items[:n]


def recalibrate(server: LiveServer, api: httpx.Client, tmp: Path) -> LivePromise:
    log = Path(server.env["CANDOR_DECISION_LOG"])
    t0 = time.monotonic()
    items = ladder(N_CALIBRATION, 21, MIX)
    labelled = ask_and_label(api, items)
    t1 = time.monotonic()
    assert 0 < sum(c for _, c in labelled) < len(labelled), "the ladder must mix outcomes"
    out = Path(server.env["CANDOR_CALIBRATION_DIR"]) / "from-log.json"  # reloads read there
    exe = Path(sys.executable).with_name("candor")
    run = subprocess.run([str(exe), "calibrate", "--from-log", str(log), "--out", str(out),
                          "--alphas", "0.5", "0.7", "0.9", "--default-alpha", "0.9",
                          "--scope-level", "0.1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    artifact = json.loads(out.read_text())
    artifact_id = artifact["id"]
    r = api.post("/v1/admin/calibration/reload", json={"source": out.name}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["profiles"] == {artifact["profile"]: artifact_id}  # exactly that one
    after = api.get("/v1/calibration").json()
    # a few audited labels under the new promise, so every promise series exists whatever
    # test runs next (the Prometheus test evaluates each panel and alert on them)
    ask_and_label(api, ladder(4, 22, MIX))
    return LivePromise(out, artifact_id, log, after,
                       {"ask_and_label": t1 - t0, "calibrate_and_reload": time.monotonic() - t1})
