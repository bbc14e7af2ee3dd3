"""Load at about twice what the engine serves: the adaptive limit sheds (429 + Retry-After)
earlier than the fixed one, accepted requests' p99 stays bounded, no 5xx, counts add up.

The engine is a fake with a latency model (processor sharing): ``CAPACITY`` sequences run at
full speed, beyond that every running request slows down in proportion, as a continuous-
batching engine does once its batch is full. The fixed run admits up to the ceiling (32);
the adaptive one starts at 16 (four times what the engine serves, as if set too high) and
must move down with the latency. Open-loop arrivals.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import httpx

from service.config import Settings
from service.engine.protocol import ChatMessage, Generation, GenParams
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine

CAPACITY, WORK_S, TICK = 4, 0.2, 0.01  # serves CAPACITY / WORK_S = 20 requests/s
RATE, SECONDS, CEILING = 40.0, 4.0, 32  # offered: 2x


class QueueingEngine(FakeEngine):
    running: int = 0

    async def generate(self, messages: list[ChatMessage], params: GenParams,
                       request_id: str) -> Generation:
        self.running += 1
        done = 0.0
        try:
            while done < WORK_S:
                await asyncio.sleep(TICK)
                done += TICK * min(1.0, CAPACITY / self.running)
        finally:
            self.running -= 1
        return await super().generate(messages, params, request_id)


INITIAL = 16


async def run(admission: str) -> dict[str, object]:
    s = Settings(samples_n=2, max_inflight=CEILING, admission=admission,
                 admission_initial_limit=INITIAL, engine_watchdog_s=0)
    engine = QueueingEngine()
    app = create_app(s, engine=engine)
    app.state.candor.attach(engine, FakeEmbedder())
    codes: Counter[int] = Counter()
    ok: list[float] = []
    first_429: list[float] = []
    no_retry_after = 0
    body = {"question": "q", "max_tokens": 8, "policy": {"max_stage": 0}}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t", timeout=60) as c:
        t0 = time.perf_counter()

        async def one(delay: float) -> None:
            nonlocal no_retry_after
            await asyncio.sleep(delay)
            start = time.perf_counter()
            r = await c.post("/v1/answer", json=body)
            codes[r.status_code] += 1
            if r.status_code == 200:
                ok.append(time.perf_counter() - start)
            elif r.status_code == 429:
                first_429.append(start - t0)
                no_retry_after += "retry-after" not in r.headers

        n = int(RATE * SECONDS)
        await asyncio.gather(*(one(i / RATE) for i in range(n)))
    ok.sort()
    return {"admission": admission, "sent": n, "status": dict(codes),
            "first_429_s": round(min(first_429), 2) if first_429 else None,
            "p50_ms": round(ok[len(ok) // 2] * 1000),
            "p99_ms": round(ok[int(0.99 * len(ok))] * 1000),
            "accepted_per_s": round(len(ok) / (time.perf_counter() - t0), 1),
            "no_retry_after": no_retry_after, "inflight_after": app.state.candor.inflight,
            "final_limit": app.state.candor.limiters["answers"].current}


async def test_adaptive_sheds_earlier_than_fixed_with_bounded_p99() -> None:
    fixed = await run("fixed")
    adaptive = await run("adaptive")
    print("\nADMISSION_LOAD_REPORT " + json.dumps({"fixed": fixed, "adaptive": adaptive}))
    for rep in (fixed, adaptive):
        status = rep["status"]
        assert sum(status.values()) == rep["sent"]  # counts add up
        assert set(status) <= {200, 429}, status  # no 5xx, nothing else
        assert status.get(429, 0) > 0 and status.get(200, 0) > 0
        assert rep["no_retry_after"] == 0 and rep["inflight_after"] == 0
    assert adaptive["first_429_s"] < fixed["first_429_s"]
    assert adaptive["p99_ms"] < fixed["p99_ms"]
    # it adapted: down with the latency (measured: 16 -> 12-13 on 2 busy cores; it
    # started at 4 before, where nothing had to move)
    assert adaptive["final_limit"] < INITIAL
    assert adaptive["p99_ms"] < 6 * WORK_S * 1000  # bounded: a few times the no-load time
