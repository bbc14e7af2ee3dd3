"""Labels have an admission pool of their own (``CANDOR_MAX_INFLIGHT_FEEDBACK``): with the pool
full, the next label is a 429 ``overloaded_error`` with ``Retry-After`` (never a queue in front
of the decision log writer), the answers pool is untouched, and every admitted label is
stored once the writer gets to it.

The labels are held inside the store: the decision log's ``feedback`` waits on an event
before the real commit, so exactly ``N`` are in flight when the others arrive.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from service.config import Settings
from service.decisions.log import DecisionLog
from service.decisions.table import labelled_entries
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine

N, K = 3, 2  # the pool's size, and the labels beyond it


async def wait_until(cond: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_the_feedback_pool_is_a_setting_with_a_default() -> None:
    default = Settings.model_fields["max_inflight_feedback"].default
    assert isinstance(default, int) and default >= 1
    assert Settings(max_inflight_feedback=N).max_inflight_feedback == N


async def test_labels_beyond_the_pool_get_429_answers_still_admitted_none_lost(
        tmp_path: Path) -> None:
    s = Settings(samples_n=2, max_inflight_feedback=N, engine_watchdog_s=0)
    engine = FakeEngine()
    app = create_app(s, engine=engine)
    state = app.state.candor
    state.attach(engine, FakeEmbedder())
    db = tmp_path / "d.sqlite"
    dlog = DecisionLog(db, metrics=state.metrics)
    state.decision_log = dlog

    real = dlog.feedback
    release = asyncio.Event()
    held = 0

    async def slow_feedback(*args: Any, **kwargs: Any) -> Any:  # the store, slow
        nonlocal held
        held += 1
        await release.wait()
        return await real(*args, **kwargs)

    dlog.feedback = slow_feedback  # type: ignore[method-assign]  # the instance only
    body = {"question": "What is 2 + 2?", "max_tokens": 8, "policy": {"max_stage": 0}}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t", timeout=30) as c:
            ids = []
            for _ in range(N + K):
                r = await c.post("/v1/answer", json=body)
                assert r.status_code == 200, r.text
                ids.append(r.json()["id"])
            labels = {rid: i % 2 == 0 for i, rid in enumerate(ids)}

            posts = [asyncio.create_task(c.post("/v1/feedback",
                                                json={"id": rid, "correct": labels[rid]}))
                     for rid in ids]
            await wait_until(lambda: held == N and sum(t.done() for t in posts) == K,
                             f"{N} labels held in the store and {K} answered")
            assert state.limiters["feedback"].inflight == N
            shed = [t.result() for t in posts if t.done()]
            for r in shed:
                assert r.status_code == 429, r.text
                assert int(r.headers["retry-after"]) >= 1
                err = r.json()["error"]
                assert err["type"] == "overloaded_error" and err["code"] == 429
                assert err["message"]
            assert state.limiters["feedback"].shed == K

            # the answers pool is not the feedback pool: an answer is admitted meanwhile
            r = await c.post("/v1/answer", json=body)
            assert r.status_code == 200, r.text
            assert state.limiters["answers"].inflight == 0

            metrics = (await c.get("/metrics")).text
            assert f'candor_admission_limit{{pool="feedback"}} {float(N)}' in metrics

            release.set()
            done = await asyncio.gather(*posts)
        ok = {rid: r for rid, r in zip(ids, done, strict=True) if r.status_code == 200}
        assert len(ok) == N and sum(r.status_code == 429 for r in done) == K
        assert all(r.json()["stored"] is True for r in ok.values())
        assert state.limiters["feedback"].inflight == 0
    finally:
        await asyncio.to_thread(dlog.close)
    stored = {e["id"]: e["correct"] for e in labelled_entries(db)}
    assert stored == {rid: labels[rid] for rid in ok}  # every admitted label, nothing else
