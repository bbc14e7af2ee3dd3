"""Shared helpers for the benchmarks: a real engine, an in-process server, timing summaries."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import uvicorn

from service.config import Settings
from service.engine.model_store import resolve_model
from service.engine.vllm_local import VllmLocalEngine
from service.main import create_app
from service.server import uvicorn_options


async def start_engine(settings: Settings) -> VllmLocalEngine:
    return await VllmLocalEngine.start(settings, resolve_model(settings))


@dataclass
class Served:
    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def serve_in_process(settings: Settings, engine: object, embedder: object | None = None,
                           port: int = 8765) -> Served:
    """Candor on loopback in this event loop, sharing ``engine`` with the raw baseline."""
    app = create_app(settings, engine=engine, embedder=embedder)  # type: ignore[arg-type]
    # as `candor serve` runs it (its protocol, keep-alive, limits), on this loopback port
    config = uvicorn.Config(app, **{**uvicorn_options(settings), "host": "127.0.0.1",
                                    "port": port, "log_level": "warning"})
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    return Served(f"http://127.0.0.1:{port}", server, task)


@dataclass
class Run:
    name: str
    latencies: list[float]
    wall: float
    tokens: int

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall

    def line(self) -> str:
        return (f"{self.name:<28} p50 {self.p50 * 1000:8.0f} ms  p95 {self.p95 * 1000:8.0f} ms  "
                f"{self.rps:6.3f} req/s  {self.tokens / self.wall:6.1f} tok/s")


async def timed(name: str, items: list[str], concurrency: int,
                one: Callable[[str], Awaitable[int]]) -> Run:
    """Run ``one(item)`` (returns tokens) over items with a bounded concurrency."""
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    toks = 0

    async def go(item: str) -> None:
        nonlocal toks
        async with sem:
            t0 = time.perf_counter()
            toks += await one(item)
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(go(i) for i in items))
    return Run(name, lat, time.perf_counter() - t0, toks)
