"""Two Candor replicas (fake engine, real uvicorn processes) sharing a real PostgreSQL
decision log: feedback for an answer from A posted to B is accepted and counted once, and
kill -9 of a replica loses no acknowledged feedback."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.decisions.table import labelled_entries
from tests.pg import pg_bin, postgres_cluster
from tests.servers import free_port, spawn, wait_ready

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(pg_bin() is None,
                                reason="PostgreSQL not installed (`make postgresql`)")

REPLICA = """
import sys, uvicorn
from service.config import Settings
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine
s = Settings(samples_n=2, max_inflight=256, decision_log_url=sys.argv[1])
uvicorn.run(create_app(s, engine=FakeEngine(), embedder=FakeEmbedder()),
            host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


class Replica:
    def __init__(self, db_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = spawn(REPLICA, db_url, str(self.port))
        if not wait_ready(self.url):
            raise RuntimeError("replica did not start")

    def feedback_count(self) -> float:
        text = httpx.get(f"{self.url}/metrics").text
        return sum(float(v) for v in re.findall(r"^candor_feedback_total\{[^}]*\} (\S+)$",
                                                text, re.M))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with postgres_cluster() as url:
        yield url


@pytest.fixture
def replicas(pg: str) -> Iterator[tuple[Replica, Replica]]:
    a, b = Replica(pg), Replica(pg)
    yield a, b
    a.stop()
    b.stop()


def test_feedback_to_b_for_an_answer_from_a(pg: str, replicas: tuple[Replica, Replica]) -> None:
    a, b = replicas
    with httpx.Client(timeout=10) as c:
        ans = c.post(f"{a.url}/v1/answer", json={"question": "What is 2+2?"}).json()
        r = c.post(f"{b.url}/v1/feedback", json={"id": ans["id"], "correct": True})
        assert r.status_code == 200, r.text
        assert r.json() == {"id": ans["id"], "stored": True, "audited": False}
        missing = c.post(f"{b.url}/v1/feedback", json={"id": "ans_nope", "correct": True})
        assert missing.status_code == 404
    assert a.feedback_count() + b.feedback_count() == 1  # counted once, by B
    rows = [e for e in labelled_entries(pg) if e["id"] == ans["id"]]
    assert len(rows) == 1 and rows[0]["correct"] is True and rows[0]["endpoint"] == "/v1/answer"


def test_kill_9_of_a_replica_loses_no_acknowledged_feedback(pg: str,
                                                            replicas: tuple[Replica, Replica]
                                                            ) -> None:
    a, b = replicas
    acked: dict[str, bool] = {}
    lock, stop = threading.Lock(), threading.Event()

    def work(w: int) -> None:
        with httpx.Client(timeout=10) as c:
            i = 0
            while not stop.is_set():
                try:
                    ans = c.post(f"{a.url}/v1/answer", json={"question": f"q{w}-{i}"})
                    rid = ans.json()["id"]
                    target = a if i % 2 else b  # labels through both replicas
                    r = c.post(f"{target.url}/v1/feedback",
                               json={"id": rid, "correct": w % 2 == 0})
                    if r.status_code == 200 and r.json()["stored"]:
                        with lock:
                            acked[rid] = w % 2 == 0
                except (httpx.TransportError, ValueError, KeyError):
                    return
                i += 1

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    os.kill(a.proc.pid, signal.SIGKILL)  # mid-traffic
    a.proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    assert len(acked) > 10, "too little feedback was acknowledged before the kill"
    on_disk = {e["id"]: e["correct"] for e in labelled_entries(pg)}
    lost = [rid for rid, label in acked.items() if on_disk.get(rid) != label]
    print("\nPG_KILL9_REPORT " + json.dumps({"acked": len(acked), "lost": len(lost)}))
    assert lost == []
