"""Replicas agree: with one real PostgreSQL decision log, audited feedback sent to replica A
moves replica B's verdict and counts within one refresh interval, a replica started after
the labels exist rebuilds them at startup, and no replica counts its own labels twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine
from tests.pg import pg_bin, postgres_cluster
from tests.unit.test_calibration_api import SCRIPTS
from tests.unit.test_promise import write

pytestmark = pytest.mark.skipif(pg_bin() is None,
                                reason="PostgreSQL not installed (`make postgresql`)")

INTERVAL = 0.3  # CANDOR_MONITOR_REFRESH_S for these replicas
RISK = {"target_risk": 0.3}  # certified by the test artifact


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with postgres_cluster() as url:
        yield url


def replica(pg: str, artifact: Path) -> TestClient:
    s = Settings(samples_n=4, calibration=artifact, decision_log_url=pg, audit_rate=1.0,
                 monitor_min_labels=5, monitor_refresh_s=INTERVAL)  # type: ignore[arg-type]
    return TestClient(create_app(s, engine=FakeEngine(scripts=SCRIPTS),
                                 embedder=FakeEmbedder()), raise_server_exceptions=False)


def watch(c: TestClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """The replica's promise at target risk 0.3, and its ``monitors`` freshness."""
    body = c.get("/v1/calibration").json()
    (status,) = body["profiles"]
    promise = next((p for p in status["promises"] if p["target_risk"] == 0.3),
                   {"verdict": "unverified", "labelled": 0})  # not watched before a decision
    return {**promise, "drift_n": (status["drift"] or {}).get("confidence", {}).get("n")}, \
        body["monitors"]


def until_refreshed_after(c: TestClient, t: float) -> float:
    """Seconds until the replica's view includes everything committed before ``t``."""
    while (at := watch(c)[1]["refreshed_at"]) is None or at <= t:
        assert time.time() - t < INTERVAL + 2.0, "no refresh within one interval"
        time.sleep(0.02)
    return time.time() - t


def test_feedback_to_a_moves_bs_verdict_within_one_interval(pg: str, tmp_path: Path) -> None:
    artifact = write(tmp_path)
    with replica(pg, artifact) as a, replica(pg, artifact) as b:
        before, fresh = watch(b)
        assert before["verdict"] == "unverified" and before["labelled"] == 0
        assert fresh["source"] == "shared_log" and fresh["refresh_interval_s"] == INTERVAL
        answers = [a.post("/v1/answer", json={"question": f"k0{i % 4}", "policy": RISK}).json()
                   for i in range(16)]
        answered = [x for x in answers if x["decision"] == "answer"]
        assert len(answered) >= 5 and all(x["audit"] for x in answers)
        for x in answered:  # acknowledged = committed to the shared log
            assert a.post("/v1/feedback", json={"id": x["id"], "correct": True}).status_code == 200
        acked = time.time()
        waited = until_refreshed_after(b, acked)
        on_b, fresh = watch(b)
        on_a, _ = watch(a)
        assert on_b["labelled"] == len(answered) and on_b["errors"] == 0
        assert on_b["verdict"] == "holding"  # it was unverified: B saw A's labels
        assert on_b["abstention"]["decisions"] == len(answers)
        assert on_b["drift_n"] == len(answers)  # the drift window: A's decisions
        until_refreshed_after(a, acked)
        assert watch(a)[0] == watch(b)[0]  # one verdict, one set of counts: A's not doubled
        assert fresh["age_s"] is not None and fresh["age_s"] < INTERVAL + 2.0
        print(f"B saw A's labels {waited:.2f} s after the last ack (interval {INTERVAL} s)")

        wrong = answered[0]["id"]  # a relabel through B reaches A as a swap, not a new label
        assert b.post("/v1/feedback", json={"id": wrong, "correct": False}).status_code == 200
        until_refreshed_after(a, time.time())
        assert watch(a)[0]["labelled"] == len(answered) and watch(a)[0]["errors"] == 1

        with replica(pg, artifact) as late:  # started after the labels exist: rebuilt at once
            rebuilt = watch(late)[0]
            assert rebuilt["labelled"] == len(answered) and rebuilt["errors"] == 1
            assert rebuilt == watch(a)[0]
