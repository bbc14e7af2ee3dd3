"""Answer latency under a flood of labels (hardening finding 7): ``POST /v1/answer`` p50/p95
with no labels, with a flood on an unbounded feedback pool (as before the pool existed), and
with the same flood on the default pool (``CANDOR_MAX_INFLIGHT_FEEDBACK``, or ``--pool``).

One server (uvicorn on loopback, in this process) with a SQLite decision log; the answers
run in a closed loop at ``--concurrency`` from this process. The labellers run in a separate
process (the finding had 4 threads): keep-alive connections, each posting labels for logged
answers back to back and sleeping ``Retry-After`` on a 429 as candor_client does. Each flood
size is run as three arms back to back (none, unbounded, pool) and the whole sweep
``--rounds`` times (ABCABC), so drift hits every arm. The unbounded arm is the same server
with the feedback pool's ceiling raised out of reach. Prints one line per arm, then the
p50/p95 ratios against the no-label baseline pooled over rounds, and the labels/s each
flood got stored and shed.

The engine is ``FakeEngine`` (tests/fakes.py) sleeping ``--engine-delay`` per generation
(0.4 s: about the finding's 430 ms answer), so the answer's time is the engine's plus what
the server adds, and the engine takes no CPU. ``--engine real`` uses the embedded model
(vLLM), which competes with the server for the cores as in production.

    .venv/bin/python benchmarks/feedback_load.py [--engine real] [--labellers 4,64] [--pool 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from benchmarks._common import Run, serve_in_process  # noqa: E402
from service.config import Settings  # noqa: E402

UNBOUNDED = 1_000_000


def label_flood(url: str, ids: list[str], conns: int, stop: Any, out: Any) -> None:
    """The labellers (a child process): ``conns`` keep-alive connections, each a closed loop
    of ``POST /v1/feedback``. Plain HTTP/1.1 on asyncio streams, so the flood costs this
    process little CPU and the server, not the client, is what limits its rate."""
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    counts = {"ok": 0, "shed": 0, "other": 0}

    async def labeller(k: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = k
        try:
            while True:
                body = json.dumps({"id": ids[i % len(ids)], "correct": i % 3 > 0}).encode()
                i += conns
                writer.write(b"POST /v1/feedback HTTP/1.1\r\nHost: candor\r\n"
                             b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                             % len(body) + body)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                key = "ok" if status == 200 else "shed" if status == 429 else "other"
                counts[key] += 1
                if status == 429:  # back off as candor_client does
                    after = re.search(rb"(?i)\r\nretry-after: *(\d+)", head)
                    await asyncio.sleep(float(after.group(1)) if after else 1.0)
        finally:
            writer.close()

    async def run() -> float:
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(labeller(k)) for k in range(conns)]
        while not stop.is_set():
            await asyncio.sleep(0.01)
            for t in tasks:
                if t.done() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]  # a broken flood stops the run
        seconds = time.perf_counter() - t0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return seconds

    seconds = asyncio.run(run())
    out.put({**counts, "seconds": seconds})


async def answers(client: httpx.AsyncClient, name: str, n: int, concurrency: int,
                  body: dict[str, Any]) -> Run:
    lat: list[float] = []
    queue = list(range(n))

    async def worker() -> None:
        while queue:
            queue.pop()
            t0 = time.perf_counter()
            r = await client.post("/v1/answer", json=body)
            r.raise_for_status()
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Run(name, lat, time.perf_counter() - t0, 0)


async def main(a: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="candor-feedback-load-"))
    settings = Settings(calibration="none", admission="fixed", max_inflight=64,
                        decision_log=tmp / "decisions.sqlite", engine_watchdog_s=0)
    pool = a.pool or settings.max_inflight_feedback
    if a.engine == "real":
        from benchmarks._common import start_engine
        from service.signals.embedder import Embedder

        engine: Any = await start_engine(settings)
        embedder: Any = Embedder(settings.embedding_model)
    else:
        from tests.fakes import FakeEmbedder, FakeEngine

        engine, embedder = FakeEngine(delay_s=a.engine_delay), FakeEmbedder()
    served = await serve_in_process(settings, engine, embedder, port=a.port)
    limiter = served.server.config.app.state.candor.limiters["feedback"]  # type: ignore[attr-defined]
    body = {"question": "What is 2 + 2?", "max_tokens": a.max_tokens,
            "policy": {"max_stage": 0}}
    ctx = mp.get_context("spawn")
    results: dict[tuple[int, str], list[Run]] = {}
    rates: dict[tuple[int, str], list[dict[str, float]]] = {}
    print(f"engine {a.engine}, answers c={a.concurrency} x {a.answers} per arm, "
          f"feedback pool {pool}{'' if a.pool else ' (the default)'}, "
          f"SQLite decision log in {tmp}", flush=True)
    async with httpx.AsyncClient(base_url=served.url, timeout=600) as client:
        ids = [(await client.post("/v1/answer", json=body)).json()["id"]
               for _ in range(a.ids)]  # logged decisions to label (and the warm-up)
        for rnd in range(a.rounds):
            for conns in a.labellers:
                for arm in ("none", "unbounded", "pool"):
                    limiter.ceiling = UNBOUNDED if arm == "unbounded" else pool
                    name = f"labellers={conns} {arm} r{rnd}"
                    proc = None
                    if arm != "none":
                        stop, out = ctx.Event(), ctx.Queue()
                        proc = ctx.Process(target=label_flood,
                                           args=(served.url, ids, conns, stop, out))
                        proc.start()
                        await asyncio.sleep(a.settle)  # the flood is running
                    run = await answers(client, name, a.answers, a.concurrency, body)
                    line = (f"{name:<28} p50 {run.p50 * 1000:6.0f} ms  p95 "
                            f"{run.p95 * 1000:6.0f} ms  {run.rps:5.2f} answers/s")
                    if proc is not None:
                        stop.set()
                        got = await asyncio.to_thread(out.get)
                        proc.join()
                        rates.setdefault((conns, arm), []).append(got)
                        line += (f"  labels {got['ok'] / got['seconds']:6.0f}/s ok, "
                                 f"{got['shed'] / got['seconds']:5.0f}/s shed (429), "
                                 f"{got['other']} other")
                    print(line, flush=True)
                    results.setdefault((conns, arm), []).append(run)
    await served.stop()
    await engine.aclose()
    print("\nratios against no labels (pooled over rounds):")
    for conns in a.labellers:
        base = pooled(results[(conns, "none")])
        for arm in ("unbounded", "pool"):
            other = pooled(results[(conns, arm)])
            got = rates[(conns, arm)]
            secs = sum(g["seconds"] for g in got)
            print(f"  labellers={conns:<3} {arm:<9} p50 {other[0] / base[0]:.3f}  "
                  f"p95 {other[1] / base[1]:.3f}  [p50 {base[0] * 1000:.0f} -> "
                  f"{other[0] * 1000:.0f} ms, p95 {base[1] * 1000:.0f} -> "
                  f"{other[1] * 1000:.0f} ms; labels {sum(g['ok'] for g in got) / secs:.0f}/s "
                  f"stored, {sum(g['shed'] for g in got) / secs:.0f}/s shed]")


def pooled(runs: list[Run]) -> tuple[float, float]:
    xs = sorted(x for r in runs for x in r.latencies)
    return xs[len(xs) // 2], xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=("fake", "real"), default="fake")
    ap.add_argument("--engine-delay", type=float, default=0.4,
                    help="seconds FakeEngine sleeps per generation")
    ap.add_argument("--labellers", type=lambda s: [int(x) for x in s.split(",")],
                    default=[4, 64], help="labeller connections per flood, comma-separated")
    ap.add_argument("--pool", type=int, default=0,
                    help="the pool arm's size (default: CANDOR_MAX_INFLIGHT_FEEDBACK's)")
    ap.add_argument("--concurrency", type=int, default=4, help="answers in flight")
    ap.add_argument("--answers", type=int, default=40, help="answers timed per arm")
    ap.add_argument("--ids", type=int, default=200, help="logged decisions to label")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--settle", type=float, default=1.0, help="seconds of flood before timing")
    ap.add_argument("--port", type=int, default=8767)
    asyncio.run(main(ap.parse_args()))
