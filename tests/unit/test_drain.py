"""Graceful drain (service/drain.py): SIGTERM turns readiness to 503 at once, refuses new
and queued work with 503 ``draining`` + Retry-After (never a dropped connection), lets
the running request finish, and exits with status 0. A real ``candor serve`` process
(``service.server.serve``) over a fake engine, so the signal path is the real one."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from service.admission.queue import EngineQueue
from service.admission.speed import NEW, Pass
from service.errors import Draining
from service.server import GRACE_S
from tests.servers import REPO, free_port

SCRIPT = textwrap.dedent("""
    import sys
    from service.config import Settings
    from service.main import create_app
    from service.server import serve
    from tests.fakes import FakeEngine

    settings = Settings(port=int(sys.argv[1]), log_level="warning", engine_sequences=1,
                        samples_n=2, engine_watchdog_s=0, decision_log_enabled=False,
                        drain_timeout_s=float(sys.argv[2]))
    serve(create_app(settings, engine=FakeEngine(delay_s=float(sys.argv[3]))), settings)
""")
BODY = {"question": "What is 2 + 2?", "policy": {"max_stage": 0}}


def _start(drain_timeout_s: float, delay_s: float) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(port), str(drain_timeout_s),
                             str(delay_s)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"not ready: {proc.communicate()[0]}")


def _post(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/answer", json=BODY, timeout=30)


def test_sigterm_drains_readiness_first_then_refuses_queued_and_new_work() -> None:
    proc, url = _start(drain_timeout_s=10, delay_s=1.5)
    try:
        with ThreadPoolExecutor(3) as pool:
            sent = [pool.submit(_post, url) for _ in range(3)]  # 1 runs, 2 queue
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            ready = httpx.get(url + "/readyz", timeout=5)
            late = _post(url)  # arrives while the first one still runs
            rs = [f.result() for f in sent]  # a dropped connection would raise here
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert ready.status_code == 503 and ready.json()["error"]["type"] == "draining"
    assert sorted(r.status_code for r in rs) == [200, 503, 503]
    for r in [*(r for r in rs if r.status_code == 503), late]:
        assert r.status_code == 503 and r.json()["error"]["type"] == "draining"
        assert r.headers["retry-after"] == "1" and r.headers["connection"] == "close"
    assert code == 0  # stopped by the drain, not killed by the signal


def test_a_request_still_running_at_the_drain_timeout_does_not_hold_the_exit() -> None:
    proc, url = _start(drain_timeout_s=0.5, delay_s=30)
    try:
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(lambda: httpx.post(url + "/v1/answer", json=BODY, timeout=60))
            time.sleep(0.5)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            elapsed = time.monotonic() - t0
            try:
                slow.result()
            except httpx.HTTPError:
                pass  # past every bound the connection goes: what the timeout is for
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    # drain timeout (0.5 s) + uvicorn's graceful-shutdown limit (GRACE_S), not the 30 s
    # request
    assert code == 0 and elapsed < 0.5 + GRACE_S + 3, elapsed


async def test_closing_the_queue_refuses_new_and_queued_first_calls_only() -> None:
    q = EngineQueue(capacity=2, queue_max=8)
    await q.acquire(2, NEW)
    first = asyncio.create_task(q.acquire(1, NEW))  # a request's first call, queued
    escalation = asyncio.create_task(q.acquire(1, 0))  # a started request's samples
    await asyncio.sleep(0.01)
    q.close(lambda: Draining("shutting down"))
    with pytest.raises(Draining):
        await first
    with pytest.raises(Draining):
        q.admit(budget_s=60, passes=[Pass(1, 8)])
    assert not escalation.done() and q.waiting == 1  # it goes on
    q.release(1)
    assert await escalation == 1 and q.running == 2
