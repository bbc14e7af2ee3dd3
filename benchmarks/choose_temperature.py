"""Choose the stage-1 sampling temperature from data (issue 4).

For each question of the arithmetic ladder (1-2 digits, where the 135M model is
right about half the time), one greedy answer is graded; then for each candidate
temperature, N samples are drawn and the self-consistency of the greedy answer
with them is computed. A good temperature makes consistency separate right from
wrong greedy answers (high AUROC) without collapsing every question into one
cluster (homogeneous rate) or dissolving into noise (every sample different).

    .venv/bin/python benchmarks/choose_temperature.py [--n 48] [--temps 0.3 0.5 0.7 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from tqdm import tqdm  # noqa: E402

from benchmarks._common import start_engine  # noqa: E402
from service.config import Settings  # noqa: E402
from service.engine.protocol import ChatMessage, GenParams  # noqa: E402
from service.labelled.ladder import arithmetic_ladder  # noqa: E402
from service.signals.consistency import consistency_stats  # noqa: E402
from service.signals.normalize import final_number  # noqa: E402


async def main(n: int, temps: list[float], samples: int, max_tokens: int, seed: int) -> None:
    items = arithmetic_ladder(n, seed=seed, max_digits=2)
    engine = await start_engine(Settings())
    sem = asyncio.Semaphore(8)
    rid = iter(range(10**9))

    async def gen(q: str, params: GenParams) -> list[str]:
        async with sem:
            g = await engine.generate([ChatMessage("user", q)], params, f"t{next(rid)}")
        return [c.text for c in g.completions]

    async def gather(label: str, params: GenParams) -> list[list[str]]:
        tasks = [asyncio.ensure_future(gen(it.question, params)) for it in items]
        for f in tqdm(asyncio.as_completed(tasks), total=len(tasks), desc=label):
            await f
        return [t.result() for t in tasks]

    greedy = [g[0] for g in await gather("greedy", GenParams(1, 0.0, max_tokens))]
    correct = np.array([final_number(g) == it.answer for g, it in zip(greedy, items,
                                                                      strict=True)])
    print(f"greedy accuracy {correct.mean():.3f} on n={n} (1-2 digit ladder, seed {seed})")
    print(f"{'T':>5} {'AUROC(consistency)':>19} {'homogeneous':>12} {'mean clusters':>14} "
          f"{'sample acc':>11}")
    for t in temps:
        outs = await gather(f"T={t}", GenParams(samples, t, max_tokens))
        stats = [consistency_stats(g, s, "math") for g, s in zip(greedy, outs, strict=True)]
        cons = np.array([s.consistency for s in stats])
        homo = np.mean([s.homogeneous for s in stats])
        clusters = np.mean([s.n_clusters for s in stats])
        acc = np.mean([final_number(x) == it.answer for o, it in zip(outs, items, strict=True)
                       for x in o])
        auroc = roc_auc_score(correct, cons) if 0 < correct.sum() < len(correct) else float("nan")
        print(f"{t:5.2f} {auroc:19.3f} {homo:12.3f} {clusters:14.2f} {acc:11.3f}", flush=True)
    await engine.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--temps", type=float, nargs="+", default=[0.3, 0.5, 0.7, 1.0])
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    asyncio.run(main(a.n, a.temps, a.samples, a.max_tokens, a.seed))
