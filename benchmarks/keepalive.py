"""Idle keep-alive connections against the clients' own pools: how many requests are lost.

An httpx (or OpenAI SDK) client reuses a pooled connection until its own idle expiry,
5 s. A server that closes idle connections after the same 5 s (uvicorn's default) now
and then closes one in the very loop step in which the client has just written a request
on it: the unread request makes the close a reset, and the client gets ``ReadError``.
The window is wider when the event loop is busy (here a task blocks it 0-20 ms at a
time), and widest when client and server share a loop, as in ``benchmarks/load.py``.

Candor on the fake engine, in this process, with the served uvicorn options; ``--clients``
connections each send ``--rounds`` requests ``--gap-s`` (+-50 ms) apart, once with each
``--keep-alive-s`` value. Prints the lost requests per value:

    .venv/bin/python benchmarks/keepalive.py --keep-alive-s 5 65
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from benchmarks._common import serve_in_process  # noqa: E402
from service.config import Settings  # noqa: E402
from tests.fakes import FakeEmbedder, FakeEngine  # noqa: E402
from tests.servers import free_port  # noqa: E402


async def busy_loop() -> None:
    """Blocks the loop 0-20 ms at a time, like a server busy with other requests."""
    while True:
        time.sleep(random.uniform(0, 0.02))
        await asyncio.sleep(0)


async def run(keep_alive_s: float, clients: int, rounds: int, gap_s: float) -> Counter[str]:
    settings = Settings(log_level="warning", decision_log_enabled=False, calibration="none",
                        keep_alive_s=keep_alive_s)
    served = await serve_in_process(settings, FakeEngine(), FakeEmbedder(), port=free_port())
    busy = asyncio.create_task(busy_loop())
    lost: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as c:

        async def client() -> None:
            for _ in range(rounds):
                try:
                    (await c.get("/healthz")).raise_for_status()
                except httpx.TransportError as exc:
                    lost[type(exc).__name__] += 1
                await asyncio.sleep(gap_s + random.uniform(-0.05, 0.05))

        await asyncio.gather(*(client() for _ in range(clients)))
    busy.cancel()
    await served.stop()
    return lost


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keep-alive-s", type=float, nargs="+", default=[5.0, 65.0])
    p.add_argument("--clients", type=int, default=60)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--gap-s", type=float, default=5.0,
                   help="idle time between a client's requests (httpx's expiry: 5 s)")
    args = p.parse_args()
    sent = args.clients * args.rounds
    for keep in args.keep_alive_s:
        lost = asyncio.run(run(keep, args.clients, args.rounds, args.gap_s))
        print(f"keep-alive {keep:g} s: {sum(lost.values())} of {sent} requests lost "
              f"{dict(lost) or ''}", flush=True)


if __name__ == "__main__":
    main()
