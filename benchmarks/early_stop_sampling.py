"""Adaptive stage 1 vs fixed N: samples drawn and consistency AUROC, on the same answers.

Reads the rows ``benchmarks/homogeneity_rule.py --save`` wrote (ladder questions, the
greedy answer graded, N samples at the serving temperature, in draw order). Samples
are i.i.d., so stopping after the first k of them is exactly what adaptive sampling
with the same rounds would have drawn; the consistency on that prefix is compared
with the consistency on all N.

    .venv/bin/python benchmarks/early_stop_sampling.py --load runs/bench/ladder-samples.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from service.labelled.quality import auroc  # noqa: E402
from service.signals.early_stop import decided, rounds  # noqa: E402


def adaptive(row: dict[str, Any], round_size: int, confidence: float) -> tuple[float, int]:
    """(consistency on the samples drawn, samples drawn) under the stopping rule."""
    flags = [s == row["greedy"] for s in row["samples"]]
    drawn = 0
    for size in rounds(len(flags), round_size):
        drawn += size
        if decided(sum(flags[:drawn]), drawn, confidence):
            break
    return sum(flags[:drawn]) / drawn, drawn


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--load", type=Path, default=None, help="rows of homogeneity_rule.py --save")
    p.add_argument("--cache", type=Path, default=None, help="a `candor calibrate` cache "
                   "(with --dataset, --n, --max-tokens as collected)")
    p.add_argument("--dataset", default="ladder-mix")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--rounds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--confidence", type=float, nargs="+", default=[0.8, 0.9, 0.95])
    a = p.parse_args()
    if a.cache is not None:
        from benchmarks.cached_rows import rows as cached_rows

        rows = cached_rows(a.cache, a.dataset, a.n, max_tokens=a.max_tokens)
    elif a.load is not None:
        rows = [json.loads(ln) for ln in a.load.read_text().splitlines() if ln.strip()]
    else:
        raise SystemExit("give --load ROWS or --cache CACHE")
    y = np.array([r["correct"] for r in rows], dtype=bool)
    n_max = len(rows[0]["samples"])
    fixed = auroc(np.array([r["agree"] for r in rows]), y)
    print(f"n={len(rows)} questions, accuracy {y.mean():.3f}; fixed N={n_max}: "
          f"consistency AUROC {fixed:.3f}, samples 1.00x")
    for size in a.rounds:
        for conf in a.confidence:
            out = [adaptive(r, size, conf) for r in rows]
            auc = auroc(np.array([c for c, _ in out]), y)
            mean = float(np.mean([k for _, k in out]))
            print(f"  round {size}, confidence {conf:.2f}: samples {mean:5.2f} "
                  f"({mean / n_max:.2f}x), AUROC {auc:.3f} ({auc - fixed:+.3f})")


if __name__ == "__main__":
    main()
