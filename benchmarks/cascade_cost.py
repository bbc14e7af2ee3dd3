"""What early exit saves (issue 4): the cascade vs always running every stage.

On the arithmetic ladder (labelled, seeded), every question is asked twice of
the same in-process server (one real engine, the real embedder): once with the
server's policy (early exit: answer when confident, abstain when hopeless), once
with ``policy.run_all`` (every stage, the decision on the final confidence).
Prints the mean generated tokens and wall time per question for both, their
ratio (target: cascade <= 0.35x always-all), and the AURC of each run's
confidence against the graded greedy answer (target: within 2%).

Thresholds: the uncalibrated defaults, or a calibration artifact when
``CANDOR_CALIBRATION`` is set (that is what the server would run).

    .venv/bin/python benchmarks/cascade_cost.py [--n 60] [--max-tokens 16] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from benchmarks._common import serve_in_process, start_engine  # noqa: E402
from service.config import Settings  # noqa: E402
from service.labelled.grading import grade_numeric  # noqa: E402
from service.labelled.ladder import arithmetic_ladder  # noqa: E402
from service.labelled.metrics import aurc  # noqa: E402
from service.signals.embedder import Embedder  # noqa: E402


async def run_pass(client: httpx.AsyncClient, items: list, policy: dict, max_tokens: int,
                   concurrency: int, label: str) -> list[dict]:
    sem = asyncio.Semaphore(concurrency)

    async def one(item: object) -> dict:
        async with sem:
            t0 = time.perf_counter()
            r = await client.post("/v1/answer", json={
                "question": item.question, "task": "math", "max_tokens": max_tokens,  # type: ignore[attr-defined]
                "policy": policy})
            r.raise_for_status()
            body = r.json()
            body["_seconds"] = time.perf_counter() - t0
            return body

    tasks = [asyncio.ensure_future(one(it)) for it in items]
    for f in tqdm(asyncio.as_completed(tasks), total=len(tasks), desc=label):
        await f
    return [t.result() for t in tasks]


def summary(name: str, rows: list[dict], correct: np.ndarray) -> tuple[float, float, float]:
    toks = float(np.mean([r["usage"]["completion_tokens"] for r in rows]))
    secs = float(np.mean([r["_seconds"] for r in rows]))
    conf = np.array([r["confidence"] for r in rows])
    a = aurc(conf, correct)
    mix = np.bincount([r["stage_reached"] for r in rows], minlength=4)
    print(f"  {name:<12} tokens/q {toks:7.1f}  s/q {secs:6.2f}  AURC {a:.4f}  "
          f"stage mix {mix.tolist()}  abstained {np.mean([r['abstained'] for r in rows]):.2f}")
    return toks, secs, a


async def main(n: int, max_tokens: int, concurrency: int, seed: int, max_digits: int) -> None:
    settings = Settings()
    items = arithmetic_ladder(n, seed=seed, max_digits=max_digits)
    engine = await start_engine(settings)
    embedder = await asyncio.to_thread(Embedder, settings.embedding_model)
    served = await serve_in_process(settings, engine, embedder)
    async with httpx.AsyncClient(base_url=served.url, timeout=900) as client:
        await client.post("/v1/answer", json={"question": "Warm up: 1 + 1?", "max_tokens": 4})
        cascade = await run_pass(client, items, {}, max_tokens, concurrency, "cascade")
        full = await run_pass(client, items, {"run_all": True, "max_stage": 3}, max_tokens,
                              concurrency, "always-all")
        cal = (await client.get("/v1/calibration")).json() if settings.calibration else None
    await served.stop()
    await engine.aclose()

    correct = np.array([grade_numeric(r["answer"], it.answer) for r, it in zip(full, items,
                                                                              strict=True)])
    print(f"n={n} ladder (seed {seed}, 1-{max_digits} digits), max_tokens={max_tokens}, "
          f"concurrency={concurrency}, greedy accuracy {correct.mean():.3f}, "
          f"calibration={'artifact ' + str(cal.get('id')) if cal else 'none (defaults)'}")
    t_c, s_c, a_c = summary("cascade", cascade, correct)
    t_f, s_f, a_f = summary("always-all", full, correct)
    print(f"cost ratio cascade/always-all: tokens {t_c / t_f:.3f}, time {s_c / s_f:.3f} "
          f"(target <= 0.35); AURC ratio {a_c / a_f:.3f} (target within 2%: <= 1.02)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-digits", type=int, default=3)
    a = ap.parse_args()
    asyncio.run(main(a.n, a.max_tokens, a.concurrency, a.seed, a.max_digits))
