"""The decision log: what it stores, feedback, retention, and kill -9 durability of feedback.

The kill test runs ``create_app`` with the real ``DecisionLog`` in a separate uvicorn
process (on the fake engine: durability of the log does not depend on the model), acks
feedback over HTTP while the process is SIGKILLed, and checks every acknowledged label
is on disk.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.config import Settings
from service.decisions.log import DecisionLog
from service.decisions.table import labelled_entries
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine
from tests.servers import free_port, spawn, wait_ready

REPO = Path(__file__).resolve().parents[2]


def client(tmp_path: Path, **settings: object) -> TestClient:
    s = Settings(samples_n=2, decision_log=tmp_path / "d.sqlite", **settings)  # type: ignore[arg-type]
    return TestClient(create_app(s, engine=FakeEngine(), embedder=FakeEmbedder()),
                      raise_server_exceptions=False)


def test_decisions_are_logged_without_text_and_labelled(tmp_path: Path) -> None:
    with client(tmp_path) as c:
        ids = [c.post("/v1/answer", json={"question": f"secret question {i}?"}).json()["id"]
               for i in range(3)]
        assert c.post("/v1/feedback", json={"id": ids[0], "correct": True}).json() == {
            "id": ids[0], "stored": True, "audited": False}
        assert c.post("/v1/feedback", json={"id": ids[2], "correct": False}).status_code == 200
        r = c.post("/v1/feedback", json={"id": "ans_unknown", "correct": True})
        assert r.status_code == 404 and r.json()["error"]["param"] == "id"
    db = tmp_path / "d.sqlite"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 3
    assert conn.execute("SELECT count(*) FROM decisions WHERE question IS NOT NULL"
                        " OR answer IS NOT NULL").fetchone()[0] == 0
    assert b"secret question" not in db.read_bytes()
    entries = labelled_entries(db)
    assert [(e["id"], e["correct"]) for e in entries] == [(ids[0], True), (ids[2], False)]
    e = entries[0]
    assert e["model"] == "SmolLM2-135M-Instruct" and e["decision"] in ("answer", "abstain")
    assert "mean_nll" in e["signals"] and e["stages"][0]["name"] == "token"
    assert e["calibration_id"] is None or isinstance(e["calibration_id"], str)


def test_log_text_stores_question_and_answer(tmp_path: Path) -> None:
    with client(tmp_path, log_text=True) as c:
        rid = c.post("/v1/answer", json={"question": "what is 2+2?"}).json()["id"]
        c.post("/v1/feedback", json={"id": rid, "correct": True})
    (e,) = labelled_entries(tmp_path / "d.sqlite")
    assert e["question"] == "what is 2+2?" and e["answer"] == "The answer is 4."


@pytest.mark.parametrize("log_text", [False, True])
def test_claims_are_logged_with_their_texts_only_under_log_text(tmp_path: Path,
                                                                log_text: bool) -> None:
    with client(tmp_path, log_text=log_text) as c:
        out = c.post("/v1/answer", json={"question": "secret?", "claims": True}).json()
        plain = c.post("/v1/answer", json={"question": "plain?"}).json()
        for rid in (out["id"], plain["id"]):
            c.post("/v1/feedback", json={"id": rid, "correct": True})
    first, second = labelled_entries(tmp_path / "d.sqlite")
    assert second["claims"] is None
    logged = json.loads(first["claims"])
    (claim,) = logged["items"]  # "The answer is 4.": one sentence
    assert (claim["span"], claim["kept"]) == (out["claims"]["items"][0]["span"], True)
    assert claim["confidence"] == out["claims"]["items"][0]["confidence"]
    assert claim["signals"] == out["claims"]["items"][0]["signals"]
    if log_text:
        assert claim["text"] == "The answer is 4." and logged["answer"] == "The answer is 4."
    else:
        assert "text" not in claim and "answer" not in logged
        assert b"The answer is 4." not in (tmp_path / "d.sqlite").read_bytes()


def test_feedback_without_a_log_is_404(tmp_path: Path) -> None:
    s = Settings(samples_n=2)
    with TestClient(create_app(s, engine=FakeEngine(), embedder=FakeEmbedder())) as c:
        r = c.post("/v1/feedback", json={"id": "ans_x", "correct": True})
    assert r.status_code == 404 and "CANDOR_DECISION_LOG" in r.json()["error"]["message"]


def test_retention_prunes_old_entries(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    dlog = DecisionLog(db, retention_days=1)
    dlog.close()
    conn = sqlite3.connect(db)
    with conn:
        for i, age_days in enumerate((0.5, 2.0, 40.0)):
            conn.execute("INSERT INTO decisions (id, ts) VALUES (?, ?)",
                         (f"ans_{i}", time.time() - age_days * 86400))
    conn.close()
    dlog = DecisionLog(db, retention_days=1)  # prunes at start (and hourly after)
    dlog.close()
    left = [r[0] for r in sqlite3.connect(db).execute("SELECT id FROM decisions")]
    assert left == ["ans_0"]


def test_a_full_queue_drops_rows_instead_of_blocking(tmp_path: Path) -> None:
    dlog = DecisionLog(tmp_path / "q.sqlite", max_queue=1)
    dlog._q.put(("decision", {}))  # the writer may take it; fill again until full
    while not dlog._q.full():
        dlog._q.put_nowait(("noop", None))
    from service import schemas

    resp = schemas.AnswerResponse.model_validate({
        "id": "ans_z", "model": "m", "answer": "a", "abstained": False, "decision": "answer",
        "confidence": 0.5, "calibrated": False, "stage_reached": 0, "signals": {},
        "stages": [], "calibration": {"calibrated": False}, "scope": {"tested": False},
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    t0 = time.perf_counter()
    dlog.record(resp, schemas.AnswerRequest(question="q"), "/v1/answer")
    assert time.perf_counter() - t0 < 0.05 and dlog.dropped == 1


# -- kill -9 durability -----------------------------------------------------------------------
SERVER = """
import sys, uvicorn
from pathlib import Path
from service.config import Settings
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine
s = Settings(samples_n=2, max_inflight=256, decision_log=Path(sys.argv[1]))
uvicorn.run(create_app(s, engine=FakeEngine(), embedder=FakeEmbedder()),
            host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def _kill_round(db: Path, run_s: float, workers: int = 8) -> tuple[dict[str, bool], int]:
    port = free_port()
    proc = spawn(SERVER, str(db), str(port))
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    acked: dict[str, bool] = {}
    sent = 0
    lock = threading.Lock()
    stop = threading.Event()

    def work(w: int) -> None:
        nonlocal sent
        with httpx.Client(base_url=url, timeout=10) as c:
            i = 0
            while not stop.is_set():
                try:
                    rid = c.post("/v1/answer", json={"question": f"q{w}-{i}"}).json()["id"]
                    label = (w + i) % 2 == 0
                    with lock:
                        sent += 1
                    r = c.post("/v1/feedback", json={"id": rid, "correct": label})
                    if r.status_code == 200 and r.json()["stored"] is True:
                        with lock:
                            acked[rid] = label
                except (httpx.TransportError, ValueError):
                    return
                i += 1

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    time.sleep(run_s)
    os.kill(proc.pid, signal.SIGKILL)  # mid-traffic: feedback in flight, writes queued
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    return acked, sent


def test_kill_9_loses_no_acknowledged_feedback(tmp_path: Path) -> None:
    db = tmp_path / "kill.sqlite"
    report = []
    all_acked: dict[str, bool] = {}
    for run_s in (1.5, 2.0, 2.5):
        acked, sent = _kill_round(db, run_s)
        assert acked, "no feedback was acknowledged before the kill"
        all_acked.update(acked)
        on_disk = {e["id"]: e["correct"] for e in labelled_entries(db)}
        lost = [rid for rid, label in all_acked.items() if on_disk.get(rid) != label]
        report.append({"run_s": run_s, "answers_sent": sent, "feedback_acked": len(acked),
                       "acked_lost": len(lost), "labels_on_disk": len(on_disk)})
        assert lost == [], f"acknowledged feedback lost after kill -9: {lost[:5]}"
    print("\nKILL9_REPORT " + json.dumps(report))


@pytest.fixture(autouse=True)
def _no_leftover_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANDOR_DECISION_LOG", raising=False)


async def test_a_shared_log_is_the_monitors_only_source_and_a_failed_read_keeps_the_server(
        caplog: pytest.LogCaptureFixture) -> None:
    """A shared (PostgreSQL) log: the runtime asks the log (``shared``, ``audit_changes``),
    never its store or a SQLite path; the monitors then count nothing themselves, and a
    read that fails at startup is logged without the URL's password and counted, and
    leaves the server up (the refresh retries it)."""

    class SharedLog:
        url = "postgresql://candor:secret@db:5432/candor"
        shared = True
        retention_s = 30 * 86400.0

        def audit_changes(self, since: str | None) -> object:
            raise ConnectionError("the database is down")

        def audit_counts(self, current_rate: float = 0.0) -> list[object]:
            raise AssertionError("not to be read")

        recent_decisions = audit_counts

    state = create_app(Settings(samples_n=2), engine=FakeEngine()).state.candor
    state.decision_log = SharedLog()
    with caplog.at_level("ERROR", logger="service.monitoring.refresh"):
        await state.restore_monitoring()
    assert "the database is down" in caplog.text and "***@db:5432" in caplog.text
    assert "secret" not in caplog.text
    assert state.monitoring.from_log and state.monitor_refresh.errors == 1
    assert all(m.labelled == m.decisions == 0 for m in state.monitoring.promises.values())
