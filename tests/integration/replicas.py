"""Two Candor replicas on one PostgreSQL decision log and one remote vLLM server
(``test_remote_engine.py::test_two_replicas_agree_and_a_drained_one_loses_nothing``).

* **Agree.** Audited answers asked and labelled through replica A; replica B's promises
  (labelled counts, errors, verdicts) equal A's once B refreshed after the last label was
  acknowledged, within one ``CANDOR_MONITOR_REFRESH_S`` (plus the read).
* **Drain.** A load of clients that retry a 503 ``draining`` (or a refused connection,
  once A is gone) on B, as a load balancer does; A gets SIGTERM mid-load. Every request
  ends answered (on A or B), no connection is dropped mid-request, every answer's row is in
  the shared log, and A exits with status 0.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.integration.conftest import LiveServer

REFRESH_S = 1.0


# the shipped profiles pin these (left at their defaults, so the replicas serve them)
PINNED = ("CANDOR_MAX_TOKENS_LIMIT", "CANDOR_DEFAULT_MAX_TOKENS", "CANDOR_SAMPLE_MAX_TOKENS")


def env(engine_url: str, pg_url: str, **extra: str) -> dict[str, str]:
    return {"CANDOR_ENGINE": "remote", "CANDOR_ENGINE_URL": engine_url,
            "CANDOR_DECISION_LOG_URL": pg_url, "CANDOR_AUDIT_RATE": "1",
            "CANDOR_MONITOR_MIN_LABELS": "4", "CANDOR_MONITOR_REFRESH_S": str(REFRESH_S),
            "CANDOR_ADMISSION": "queue", "CANDOR_CALIBRATION": "builtin", **extra}


def question(i: int) -> dict[str, Any]:
    """A one-digit sum, asked as "What is 3 + 4?" is: the shipped math profile's pinned
    max_tokens, stage 0, so the decision carries its promise."""
    return {"question": f"What is {i % 5 + 1} + {i % 4 + 2}?", "policy": {"max_stage": 0}}


def promises(server: LiveServer) -> tuple[dict[str, Any], float | None]:
    """Every profile's promises as this replica watches them, and when it last refreshed."""
    with server.client(timeout=30) as c:
        body = c.get("/v1/calibration").json()
    view = {p["profile"]: [(q["target_risk"], q["labelled"], q["errors"], q["verdict"])
                           for q in p["promises"]] for p in body["profiles"]}
    return view, body["monitors"]["refreshed_at"]


def labelled(view: dict[str, Any]) -> int:
    return sum(n for rows in view.values() for _, n, _, _ in rows)


def ask_and_label(a: LiveServer, n: int) -> float:
    """``n`` audited answers through A, each labelled through A; when the last label was
    acknowledged (unix time)."""
    with a.client(timeout=120) as c:
        for i in range(n):
            r = c.post("/v1/answer", json=question(i))
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["audit"] is True, body
            fb = c.post("/v1/feedback", json={"id": body["id"], "correct": i % 3 != 0})
            assert fb.status_code == 200 and fb.json()["audited"], fb.text
    return time.time()


def refreshed_after(server: LiveServer, t: float, within_s: float) -> tuple[dict[str, Any], float]:
    t0 = time.time()
    while True:
        view, at = promises(server)
        if at is not None and at > t:
            return view, time.time() - t
        assert time.time() - t0 < within_s, f"no refresh within {within_s} s"
        time.sleep(0.05)


def drain_under_load(a: LiveServer, b: LiveServer, n: int, clients: int,
                     after_s: float) -> dict[str, Any]:
    """``n`` requests from ``clients`` threads to A, each retried on B after a 503
    ``draining`` (what a load balancer does); SIGTERM to A ``after_s`` into the load."""
    def one(i: int) -> tuple[str, int, str]:
        with httpx.Client(timeout=120) as c:
            try:
                r = c.post(a.url + "/v1/answer", json=question(i))
            except httpx.ConnectError:  # A is gone: never admitted, the balancer moves on
                r2 = c.post(b.url + "/v1/answer", json=question(i))
                return "b_after_refused", r2.status_code, r2.json().get("id", "")
            if r.status_code == 503 and r.json()["error"]["type"] == "draining":
                assert r.headers["retry-after"] and r.headers["connection"] == "close"
                r2 = c.post(b.url + "/v1/answer", json=question(i))
                return "b_after_draining", r2.status_code, r2.json().get("id", "")
            if r.status_code == 429:  # the queue refused it before the drain: retry on B
                r2 = c.post(b.url + "/v1/answer", json=question(i))
                return "b_after_429", r2.status_code, r2.json().get("id", "")
            return "a", r.status_code, r.json().get("id", "")

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(one, i) for i in range(n)]
        time.sleep(after_s)
        t_sig = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        outcomes = [f.result() for f in futures]  # a dropped connection raises here
    code = a.proc.wait(timeout=90)
    return {"outcomes": outcomes, "exit": code, "exit_s": round(time.monotonic() - t_sig, 1)}
