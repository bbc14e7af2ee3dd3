"""Helpers of ``benchmarks/load.py``: tallies of what clients received, closed-loop and
open-loop drivers, and a sampler of the engine queue's state."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from tqdm import tqdm

from service.admission import EngineQueue


def _ms(seconds: float) -> int | None:
    return None if math.isnan(seconds) else round(seconds * 1000)


@dataclass
class Tally:
    """What one side's clients got: status codes, accepted latencies, and what went wrong
    (a 429 without ``Retry-After``, a dropped connection or client timeout)."""

    name: str
    codes: Counter[int] = field(default_factory=Counter)
    ok: list[float] = field(default_factory=list)
    in_time: list[float] = field(default_factory=list)  # ok, less the deadline abstentions
    reasons: Counter[str] = field(default_factory=Counter)
    no_retry_after: int = 0
    dropped: int = 0
    dropped_by: Counter[str] = field(default_factory=Counter)  # the client's exception
    sent: int = 0
    wall: float = 0.0
    failed: int = 0  # SDK calls that raised on an HTTP error after its retries
    missed: Counter[str] = field(default_factory=Counter)  # 5xx, deadline abstentions

    def response(self, r: httpx.Response) -> None:
        """One HTTP response (an SDK's event hook sees each of its attempts)."""
        self.codes[r.status_code] += 1
        if r.status_code == 429 and not r.headers.get("retry-after", "").isdigit():
            self.no_retry_after += 1

    def drop(self, exc: Exception) -> None:
        """A request lost with its connection (or past the client's timeout)."""
        self.dropped += 1
        self.dropped_by[f"{type(exc).__name__}: {exc}"[:120]] += 1

    async def post(self, c: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
        """One request, no retries; a transport error or client timeout counts as dropped."""
        self.sent += 1
        start = time.perf_counter()
        try:
            r = await c.post(path, json=body)
        except httpx.TransportError as exc:
            self.drop(exc)
            return
        self.response(r)
        ms = round((time.perf_counter() - start) * 1000)
        reason = r.json()["reason"] if r.status_code == 200 else None
        if r.status_code == 200:
            self.ok.append(ms / 1000)
            self.reasons[reason or "answered"] += 1
            if reason != "deadline":
                self.in_time.append(ms / 1000)
        if r.status_code >= 500 or reason == "deadline":
            self.missed[f"{r.status_code} {reason or ''} stage {body['policy']['max_stage']} "
                        f"max_tokens {body['max_tokens']}".replace("  ", " ")] += 1

    def pct(self, q: float, lat: list[float] | None = None) -> float:
        lat = sorted(self.ok if lat is None else lat)
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

    @property
    def rps(self) -> float:
        return len(self.ok) / self.wall if self.wall else 0.0

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.codes.items() if code >= 500)

    def summary(self) -> dict[str, Any]:
        return {"side": self.name, "sent": self.sent, "ok": len(self.ok),
                "status": {str(k): v for k, v in sorted(self.codes.items())},
                "failed": self.failed, "no_retry_after": self.no_retry_after,
                "dropped": self.dropped, "dropped_by": dict(self.dropped_by),
                "rps": round(self.rps, 3),
                "p50_ms": _ms(self.pct(0.5)), "p99_ms": _ms(self.pct(0.99)),
                "p99_ms_in_time": _ms(self.pct(0.99, self.in_time)),
                "reasons": dict(self.reasons), "missed": dict(sorted(self.missed.items()))}

    def line(self) -> str:
        s = self.summary()
        return (f"  {self.name:<30} sent {s['sent']:4d}  ok {s['ok']:4d}  429 "
                f"{self.codes[429]:3d}  5xx {self.server_errors}  dropped "
                f"{self.dropped}  {s['rps']:6.3f} req/s  p50 {s['p50_ms']} ms  "
                f"p99 {s['p99_ms']} ms")


async def closed_loop(tally: Tally, clients: int, per_client: int,
                      one: Callable[[int], Awaitable[None]]) -> Tally:
    """``clients`` clients, each sending ``per_client`` requests one after the other;
    ``one(i)`` sends request ``i``. Sets the tally's wall time."""
    bar = tqdm(total=clients * per_client, desc=tally.name, leave=False, disable=None)

    async def client(c: int) -> None:
        for k in range(per_client):
            await one(c * per_client + k)
            bar.update()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    tally.wall = time.perf_counter() - t0
    bar.close()
    return tally


async def open_loop(tally: Tally, rate: float, sent: int,
                    one: Callable[[int], Awaitable[None]]) -> Tally:
    """``sent`` arrivals evenly spaced at ``rate`` per second, whatever the answers."""
    bar = tqdm(total=sent, desc=tally.name, leave=False, disable=None)

    async def arrive(i: int) -> None:
        await asyncio.sleep(i / rate)
        await one(i)
        bar.update()

    t0 = time.perf_counter()
    await asyncio.gather(*(arrive(i) for i in range(sent)))
    tally.wall = time.perf_counter() - t0
    bar.close()
    return tally


@dataclass
class Trace:
    """The engine queue every ``every_s``: (s, running, waiting, pending, the measured
    total token rate: 0 until the engine was seen saturated), and the measured speed of
    one sequence alone (tokens/s: what a pass is predicted from)."""

    queue: EngineQueue
    every_s: float = 0.5
    rows: list[tuple[float, int, int, int, float]] = field(default_factory=list)
    single: list[float] = field(default_factory=list)

    async def run(self) -> None:
        t0 = time.perf_counter()
        while True:
            q = self.queue
            self.rows.append((round(time.perf_counter() - t0, 1), q.running, q.waiting,
                              q.pending, round(q.speed.total or 0.0, 1)))
            self.single.append(q.speed.single or 0.0)
            await asyncio.sleep(self.every_s)

    def summary(self) -> dict[str, Any]:
        busy = [r for r in self.rows if r[1] > 0]
        rates = [r[4] for r in busy if r[4] > 0]
        return {"samples": len(self.rows), "busy_samples": len(busy),
                "running_median": statistics.median(r[1] for r in busy) if busy else 0,
                "running_max": max((r[1] for r in self.rows), default=0),
                "waiting_max": max((r[2] for r in self.rows), default=0),
                "pending_max": max((r[3] for r in self.rows), default=0),
                "total_tok_s_min": min(rates, default=0.0),
                "total_tok_s_max": max(rates, default=0.0),
                "single_tok_s_min": round(min(self.single, default=0.0), 1),
                "single_tok_s_max": round(max(self.single, default=0.0), 1)}

    def lines(self, per_line: int = 6) -> list[str]:
        cells = [f"{t:5.1f}s r{r:2d} w{w:2d} p{p:2d} t{d:5.1f}" for t, r, w, p, d in self.rows]
        return ["    " + " | ".join(cells[i:i + per_line])
                for i in range(0, len(cells), per_line)]
