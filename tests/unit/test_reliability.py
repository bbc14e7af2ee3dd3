"""Backpressure, cancel-on-disconnect and the engine watchdog, on the fake engine."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.config import Settings
from service.main import create_app
from service.watchdog import EngineWatchdog
from tests.fakes import FakeEmbedder, FakeEngine


def ready_app(engine: FakeEngine, **settings: object) -> FastAPI:
    """An app whose cascade is wired without running the lifespan (for raw ASGI calls)."""
    app = create_app(Settings(**{"samples_n": 2, **settings}), engine=engine)  # type: ignore[arg-type]
    app.state.candor.attach(engine, FakeEmbedder())
    return app


async def test_queue_beyond_queue_max_is_429_with_retry_after_and_the_queued_are_served(
) -> None:
    engine = FakeEngine(delay_s=0.3)
    app = ready_app(engine, engine_sequences=3, queue_max=2)
    body = {"question": "q", "policy": {"max_stage": 0}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        rs = await asyncio.gather(*(c.post("/v1/answer", json=body) for _ in range(10)))
    codes = sorted(r.status_code for r in rs)
    # 3 fit in the engine, 2 wait in the queue, the other 5 are refused at once; every
    # admitted request is answered
    assert codes == [200] * 5 + [429] * 5
    rejected = next(r for r in rs if r.status_code == 429)
    assert int(rejected.headers["retry-after"]) >= 1
    assert rejected.json()["error"]["type"] == "overloaded_error"
    assert "queue_max" in rejected.json()["error"]["message"]
    state = app.state.candor
    assert state.inflight == 0 and state.queue.pending == 0 and state.queue.running == 0


async def test_over_max_inflight_is_429_with_retry_after() -> None:
    engine = FakeEngine(delay_s=0.3)
    app = ready_app(engine, max_inflight=3, admission="fixed")
    body = {"question": "q", "policy": {"max_stage": 0}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as c:
        rs = await asyncio.gather(*(c.post("/v1/answer", json=body) for _ in range(10)))
    codes = sorted(r.status_code for r in rs)
    assert codes == [200] * 3 + [429] * 7
    rejected = next(r for r in rs if r.status_code == 429)
    assert rejected.headers["retry-after"] == "1"
    assert rejected.json()["error"]["type"] == "overloaded_error"
    assert app.state.candor.inflight == 0


async def test_client_disconnect_cancels_the_engine_call() -> None:
    engine = FakeEngine(delay_s=30.0)
    app = ready_app(engine)
    payload = json.dumps({"question": "q"}).encode()
    sent: list[dict[str, object]] = []
    gone = asyncio.Event()

    async def receive() -> dict[str, object]:
        if not sent and not gone.is_set():
            sent.append({})
            return {"type": "http.request", "body": payload, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(msg: dict[str, object]) -> None:
        sent.append(msg)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "path": "/v1/answer", "raw_path": b"/v1/answer",
             "query_string": b"", "headers": [(b"content-type", b"application/json")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "scheme": "http"}
    call = asyncio.create_task(app(scope, receive, send))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if engine.active:
            break
    assert engine.active, "the engine call never started"
    state = app.state.candor
    assert state.inflight == 1
    gone.set()  # the client hangs up
    await asyncio.wait_for(call, timeout=2.0)  # returns at once, not after 30 s
    assert engine.active == set() and state.inflight == 0
    assert not any(m.get("type") == "http.response.start" for m in sent[1:])
    errors = state.metrics.registry.get_sample_value(
        "candor_requests_total", {"endpoint": "/v1/answer", "decision": "error"})
    assert errors == 1.0  # counted as a client-closed (499) error


def test_watchdog_trips_on_a_dead_engine_then_asks_for_exit() -> None:
    engine = FakeEngine()
    fatal: list[bool] = []
    with TestClient(create_app(Settings(samples_n=2), engine=engine, embedder=FakeEmbedder()),
                    raise_server_exceptions=False) as c:
        state = c.app.state.candor  # type: ignore[attr-defined]
        dog = EngineWatchdog(state, interval_s=0.01, exit_grace_s=0.01,
                             on_fatal=lambda: fatal.append(True))
        assert c.portal.call(dog.check) is False  # healthy: nothing happens
        assert c.post("/v1/answer", json={"question": "q"}).status_code == 200
        engine.healthy = False  # EngineCore crashed / OOM-killed
        c.portal.call(dog.run)  # returns once it has tripped and called on_fatal
        assert fatal == [True] and dog.tripped
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "died" in ready.json()["error"]["message"]
        r = c.post("/v1/answer", json={"question": "q"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "engine_unavailable"
        assert "died" in r.json()["error"]["message"] and r.headers["retry-after"] == "5"
        assert engine.calls[-1][0].endswith("-greedy") and len(engine.calls) == 1


async def test_watchdog_trips_on_a_load_failure() -> None:
    state = create_app(Settings()).state.candor
    dog = EngineWatchdog(state, exit_on_failure=False)
    assert await dog.check() is False  # still loading
    state.load_error = "OSError: no model files"
    assert await dog.check() is True and "failed to load" in (dog.tripped or "")


@pytest.mark.parametrize("budget", [None, 10_000_000])
def test_budget_is_capped_by_the_server_maximum(budget: int | None) -> None:
    eng = FakeEngine(delay_s=0.4)
    app = create_app(Settings(samples_n=2, max_budget_ms=150), engine=eng,
                     embedder=FakeEmbedder())
    with TestClient(app, raise_server_exceptions=False) as c:
        body = {"question": "q", "policy": {"budget_ms": budget}}
        r = c.post("/v1/answer", json=body)
    assert r.status_code == 504 and "budget_ms=150" in r.json()["error"]["message"]
    assert eng.active == set()  # the timed-out engine call was cancelled
