"""Backpressure, deadlines and client disconnects on the real engine (the session server).

Engine work is observed through vLLM's own Prometheus metrics on ``/metrics``:
``vllm:generation_tokens_total`` must stop growing (and ``vllm:num_requests_running``
drop to 0) soon after a request is abandoned, long before the work would have finished.
Each test prints one ``*_REPORT`` JSON line (run with ``-s``) for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from urllib.parse import urlparse

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration

LONG = "Write a long, detailed story about a dragon and a knight who become friends."


def vllm_sample(api: httpx.Client, name: str) -> float:
    total, seen = 0.0, False
    for fam in text_string_to_metric_families(api.get("/metrics").text):
        for s in fam.samples:
            if s.name == name:
                total, seen = total + s.value, True
    assert seen, f"{name} is not on /metrics"
    return total


def engine_goes_idle(api: httpx.Client, settle_s: float = 2.0, watch_s: float = 3.0,
                     check_running: bool = True) -> float:
    """Wait ``settle_s``, then assert no token is generated for ``watch_s``; returns tokens."""
    time.sleep(settle_s)
    before = vllm_sample(api, "vllm:generation_tokens_total")
    time.sleep(watch_s)
    after = vllm_sample(api, "vllm:generation_tokens_total")
    assert after == before, f"engine still generating: {after - before} tokens in {watch_s}s"
    if check_running:
        assert vllm_sample(api, "vllm:num_requests_running") == 0
    return after


def test_client_disconnect_aborts_engine_work(live_server: LiveServer,
                                              api: httpx.Client) -> None:
    body = json.dumps({"question": LONG, "max_tokens": 64, "return_samples": True,
                       "policy": {"max_stage": 1, "run_all": True, "answer_threshold": 1.0}})
    full_work = 64 + 10 * 32  # greedy + samples_n x sample_max_tokens, if it ran to the end
    api.post("/v1/answer", json={"question": "Say hi.", "max_tokens": 2,
                                 "policy": {"max_stage": 0}})  # warm: the first step is slow
    g0 = vllm_sample(api, "vllm:generation_tokens_total")
    u = urlparse(live_server.url)
    sock = socket.create_connection((u.hostname, u.port))
    try:
        sock.sendall((f"POST /v1/answer HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: "
                      f"application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
        deadline = time.monotonic() + 20
        while (g1 := vllm_sample(api, "vllm:generation_tokens_total")) <= g0 + 8:
            assert time.monotonic() < deadline, "the engine never started the request"
            time.sleep(0.5)
    finally:
        sock.close()  # the client hangs up mid-generation
    t_close = time.monotonic()
    g_end = engine_goes_idle(api)
    report = {"tokens_before_disconnect": g1 - g0, "tokens_total": g_end - g0,
              "tokens_if_not_aborted": full_work,
              "idle_checked_after_s": round(time.monotonic() - t_close, 1)}
    print("\nDISCONNECT_REPORT " + json.dumps(report))
    assert g_end - g0 < full_work
    assert "client disconnected: cancelled POST /v1/answer" in live_server.log_tail(400)


def test_deadline_before_first_answer_is_504_and_aborts(api: httpx.Client) -> None:
    t0 = time.monotonic()
    r = api.post("/v1/answer", json={"question": LONG, "max_tokens": 64,
                                     "policy": {"budget_ms": 1500, "max_stage": 0}})
    elapsed = time.monotonic() - t0
    assert r.status_code == 504, r.text
    assert r.json()["error"]["param"] == "policy.budget_ms"
    assert elapsed < 1.5 + 1.5
    engine_goes_idle(api, settle_s=1.0)
    print("\nDEADLINE504_REPORT " + json.dumps({"budget_ms": 1500, "elapsed_s": round(elapsed, 2)}))


def test_deadline_mid_cascade_returns_stage_0_marked(api: httpx.Client) -> None:
    # Time this machine's greedy pass (prefix-cached on the second call), then give the
    # cascade that plus a margin: enough for stage 0, far too little for 10 x 32 samples.
    q = {"question": LONG, "max_tokens": 32}
    t0 = time.monotonic()
    assert api.post("/v1/answer", json={**q, "policy": {"max_stage": 0}}).status_code == 200
    greedy_s = time.monotonic() - t0
    budget_ms = int(greedy_s * 1300) + 1000
    t0 = time.monotonic()
    r = api.post("/v1/answer", json={**q, "policy": {
        "budget_ms": budget_ms, "max_stage": 1, "run_all": True, "answer_threshold": 1.0}})
    elapsed = time.monotonic() - t0
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "abstain" and body["reason"] == "deadline"
    assert body["stage_reached"] == 0 and [s["name"] for s in body["stages"]] == ["token"]
    assert any(s.startswith("consistency: deadline") for s in body["skipped"])
    assert body["answer"]  # the greedy answer stays available
    assert elapsed < budget_ms / 1000 + 2.0
    # vLLM refreshes its scheduler gauges only on an engine step (EngineCore.run_busy_loop
    # steps only while it has work), so right after the abort num_requests_running still
    # shows the last step's count. No token may follow the abort; one tiny request then
    # forces a step, after which the gauge must read 0 (a lingering request would count).
    engine_goes_idle(api, settle_s=1.0, check_running=False)
    stale = vllm_sample(api, "vllm:num_requests_running")
    assert api.post("/v1/answer", json={"question": "Say hi.", "max_tokens": 1,
                                        "policy": {"max_stage": 0}}).status_code == 200
    running = vllm_sample(api, "vllm:num_requests_running")
    assert running == 0, f"a request still runs in vLLM after the deadline abort: {running}"
    print("\nDEADLINE_MID_REPORT " + json.dumps({
        "greedy_s": round(greedy_s, 2), "budget_ms": budget_ms, "elapsed_s": round(elapsed, 2),
        "vllm_num_requests_running_right_after_abort": stale,
        "vllm_num_requests_running_after_next_step": running}))


async def _load(url: str, total: int, concurrency: int) -> tuple[Counter[int], list[float], int]:
    body = {"question": "Say yes.", "max_tokens": 1, "policy": {"max_stage": 0}}
    codes: Counter[int] = Counter()
    ok_latency: list[float] = []
    missing_retry_after = 0
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as c:
        async def worker() -> None:
            nonlocal sent, missing_retry_after
            while sent < total:
                sent += 1
                t0 = time.perf_counter()
                r = await c.post("/v1/answer", json=body)
                codes[r.status_code] += 1
                if r.status_code == 200:
                    ok_latency.append(time.perf_counter() - t0)
                elif r.status_code == 429 and "retry-after" not in r.headers:
                    missing_retry_after += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return codes, ok_latency, missing_retry_after


def test_load_at_twice_capacity_sheds_with_429(live_server: LiveServer,
                                               api: httpx.Client) -> None:
    capacity = int(live_server.env.get("CANDOR_MAX_INFLIGHT", "32"))
    total, concurrency = 320, 2 * capacity
    t0 = time.monotonic()
    codes, lat, missing = asyncio.run(_load(live_server.url, total, concurrency))
    wall = time.monotonic() - t0
    lat.sort()
    p = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1)  # noqa: E731
    report = {"sent": total, "concurrency": concurrency, "max_inflight": capacity,
              "status": dict(codes), "p50_ms": p(0.50), "p99_ms": p(0.99),
              "max_ms": round(lat[-1] * 1000, 1), "wall_s": round(wall, 1),
              "accepted_per_s": round(codes[200] / wall, 1)}
    print("\nLOAD_REPORT " + json.dumps(report))
    assert codes[200] + codes[429] == total, codes
    assert not any(code >= 500 for code in codes)
    assert codes[429] > 0 and codes[200] > 0 and missing == 0
    assert api.get("/readyz").status_code == 200
    depth = text_string_to_metric_families(api.get("/metrics").text)
    queue = [s.value for f in depth for s in f.samples if s.name == "candor_queue_depth"]
    assert queue == [0.0]
