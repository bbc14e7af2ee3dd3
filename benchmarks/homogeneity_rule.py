"""Should "all samples in one cluster" mark stages 1-2 uninformative even when that one
cluster does not hold the greedy answer? (issue 12, gap 6)

On the arithmetic ladder, each question gets the greedy answer (graded) and N samples at
the serving temperature, through the real engine. Two rules are scored on the same
answers, with the uncalibrated stage-1 confidence the runner uses (the mean of the
stage-0 score and the agreement when stage 1 is informative, the stage-0 score alone
when it is not):

* ``any``: every single-cluster question is uninformative (the old rule);
* ``with_greedy``: only single-cluster questions whose cluster holds the greedy answer;
  a single cluster that excludes it (agreement 0) is evidence and is used.

It prints how often each case occurs, each case's accuracy, and AUROC under both rules.

    .venv/bin/python benchmarks/homogeneity_rule.py [--n 200] [--max-digits 2] \
        [--save runs/bench/ladder-samples.jsonl | --load runs/bench/ladder-samples.jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from benchmarks._common import start_engine  # noqa: E402
from service.config import Settings  # noqa: E402
from service.engine.protocol import ChatMessage, GenParams  # noqa: E402
from service.labelled.grading import grade_numeric  # noqa: E402
from service.labelled.ladder import arithmetic_ladder  # noqa: E402
from service.labelled.quality import auroc  # noqa: E402
from service.signals.consistency import consistency_stats  # noqa: E402
from service.signals.normalize import normalize_answer  # noqa: E402


async def collect(n: int, max_digits: int, max_tokens: int, seed: int,
                  save: Path | None = None) -> list[dict[str, Any]]:
    """Rows in question order; with ``save``, each row is appended as it arrives and rows
    already saved are not asked again (an interrupted run resumes)."""
    s = Settings()
    items = arithmetic_ladder(n, seed=seed, max_digits=max_digits)
    done: dict[int, dict[str, Any]] = {}
    if save is not None and save.exists():
        for line in save.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[int(row["i"])] = row
    todo = [i for i in range(n) if i not in done]
    engine = await start_engine(s)
    sem = asyncio.Semaphore(24)
    bar = tqdm(total=n, initial=n - len(todo), desc="questions", unit="q")
    fh = open(save, "a", encoding="utf-8") if save is not None else None  # noqa: SIM115

    async def one(i: int) -> dict[str, Any]:
        msgs = [ChatMessage("user", items[i].question)]
        async with sem:
            g = await engine.generate(msgs, GenParams(1, 0.0, max_tokens, s.top_logprobs),
                                      f"g{i}")
            samp = await engine.generate(msgs, GenParams(s.samples_n, s.sample_temperature,
                                                         max_tokens), f"s{i}")
        bar.update(1)
        comp = g.completions[0]
        nll = -float(np.mean([t.logprob for t in comp.tokens])) if comp.tokens else math.inf
        st = consistency_stats(comp.text, [c.text for c in samp.completions], "math")
        g = normalize_answer(comp.text, "math")
        row = {"i": i, "correct": float(grade_numeric(comp.text, items[i].answer)),
               "token": math.exp(-nll), "agree": st.consistency,
               "homogeneous": float(st.homogeneous), "greedy": g,
               "samples": st.normalized, "digits": int(items[i].meta["digits"])}
        if fh is not None:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
        return row

    try:
        for row in await asyncio.gather(*(one(i) for i in todo)):
            done[int(row["i"])] = row
        return [done[i] for i in range(n)]
    finally:
        bar.close()
        if fh is not None:
            fh.close()
        await engine.aclose()


def score(rows: list[dict[str, Any]], rule: str) -> np.ndarray:
    out = []
    for r in rows:
        uninformative = r["homogeneous"] and (rule == "any" or r["agree"] > 0)
        out.append(r["token"] if uninformative else (r["token"] + r["agree"]) / 2)
    return np.array(out)


def report(rows: list[dict[str, Any]]) -> None:
    y = np.array([r["correct"] for r in rows], dtype=bool)
    cases = {
        "single cluster, holds greedy": [r["homogeneous"] and r["agree"] > 0 for r in rows],
        "single cluster, excludes greedy": [r["homogeneous"] and r["agree"] == 0 for r in rows],
        "several clusters": [not r["homogeneous"] for r in rows],
    }
    print(f"n={len(rows)}, greedy accuracy {y.mean():.3f}")
    for name, mask in cases.items():
        m = np.array(mask, dtype=bool)
        acc = f"{y[m].mean():.3f}" if m.any() else "-"
        print(f"  {name:34s} {int(m.sum()):4d}  accuracy {acc}")
    for rule in ("any", "with_greedy"):
        a = auroc(score(rows, rule), y)
        print(f"  rule {rule:12s} AUROC {a:.3f}" if a is not None else f"  rule {rule}: one class")
    print(f"  token score alone  AUROC {auroc(np.array([r['token'] for r in rows]), y):.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--max-digits", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=10)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--save", type=Path, default=None,
                   help="append the per-question rows (JSONL; a rerun resumes; "
                        "benchmarks/early_stop_sampling.py reads them)")
    p.add_argument("--load", type=Path, default=None, help="read saved rows, no engine")
    p.add_argument("--cache", type=Path, default=None, help="a `candor calibrate` cache, "
                   "no engine (with --dataset, --n, --max-tokens as collected)")
    p.add_argument("--dataset", default="ladder-mix")
    a = p.parse_args()
    if a.cache:
        from benchmarks.cached_rows import rows as cached_rows

        rows = cached_rows(a.cache, a.dataset, a.n, max_tokens=a.max_tokens)
    elif a.load:
        rows = [json.loads(ln) for ln in a.load.read_text().splitlines() if ln.strip()]
    else:
        if a.save:
            a.save.parent.mkdir(parents=True, exist_ok=True)
        rows = asyncio.run(collect(a.n, a.max_digits, a.max_tokens, a.seed, a.save))
    report(rows)


if __name__ == "__main__":
    main()
