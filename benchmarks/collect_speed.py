"""Calibration collection speed: in-process batch collection vs the HTTP path (issue 13).

Same questions (the ``ladder-mix`` dataset), same settings, same engine, one process:

* **batch**: ``service/offline/batch.py`` (what ``candor calibrate`` does without
  ``--server``): the server's cascade in process, every question submitted at once
  (concurrency 128, the CLI default), so the engine batches all greedy passes and then
  the sampling requests;
* **http**: ``calibration/collect.py`` (``candor calibrate --server URL``): one
  ``POST /v1/answer`` per question, 8 in flight (the CLI default), against Candor served
  in this process on the same engine.

The batch run goes first, so the HTTP run is the one that finds the engine's prefix cache
warm: the ratio is if anything understated. Each run writes its own fresh cache.
Prints questions per minute for both and the ratio (target >= 3x).

    .venv/bin/python benchmarks/collect_speed.py [--n 48] [--max-stage 3] [--max-tokens 24]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import serve_in_process, start_engine  # noqa: E402
from service.calibration.collect import CollectSettings, collect  # noqa: E402
from service.config import Settings  # noqa: E402
from service.labelled.ladder import mixed_ladder  # noqa: E402
from service.offline.batch import collect_local  # noqa: E402
from service.signals.embedder import Embedder  # noqa: E402
from service.state import CandorState  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    settings = Settings(max_budget_ms=600_000,
                        max_inflight=256, admission="fixed", decision_log_enabled=False)
    engine = await start_engine(settings)
    embedder = (await asyncio.to_thread(Embedder, settings.embedding_model)
                if args.max_stage >= 2 else None)
    items = mixed_ladder(args.n, seed=args.seed)
    cfg = CollectSettings(max_tokens=args.max_tokens, max_stage=args.max_stage)
    tmp = Path(tempfile.mkdtemp(prefix="collect-speed-"))

    async def attach(state: CandorState) -> None:
        state.attach(engine, embedder)

    kept_aclose = engine.aclose  # the batch path closes its engine; this one is shared
    engine.aclose = _noop  # type: ignore[method-assign]
    t0 = time.perf_counter()
    batch, _ = await collect_local(items, tmp / "batch.jsonl", replace(cfg, concurrency=128),
                                   settings, attach, progress=not args.no_progress)
    t_batch = time.perf_counter() - t0

    served = await serve_in_process(settings, engine, embedder, port=args.port)
    try:
        t0 = time.perf_counter()
        http = await collect(items, served.url, tmp / "http.jsonl", replace(cfg, concurrency=8),
                             progress=not args.no_progress)
        t_http = time.perf_counter() - t0
    finally:
        await served.stop()
        engine.aclose = kept_aclose  # type: ignore[method-assign]
        await engine.aclose()
    assert len(batch) == len(http) == len(items)
    same = sum(b["answer"] == h["answer"] for b, h in zip(batch, http, strict=True))
    qpm_b, qpm_h = 60 * len(items) / t_batch, 60 * len(items) / t_http
    print(f"\nquestions {len(items)} (ladder-mix, seed {args.seed}), stages 0..{args.max_stage}, "
          f"<= {args.max_tokens} answer tokens; greedy answers identical: {same}/{len(items)}")
    print(f"batch (in-process, 128 at once) {t_batch:7.1f} s  {qpm_b:7.1f} questions/min")
    print(f"http  (--server, 8 in flight)   {t_http:7.1f} s  {qpm_h:7.1f} questions/min")
    print(f"RATIO batch / http = {qpm_b / qpm_h:.2f}x (target >= 3x)")


async def _noop() -> None:
    return None


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=48)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--max-stage", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--port", type=int, default=8766)
    p.add_argument("--no-progress", action="store_true")
    asyncio.run(main(p.parse_args()))
