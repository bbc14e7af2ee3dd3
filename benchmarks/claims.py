"""Claims mode, measured: the claim-level promise against keeping every claim and against
the whole-answer decision, per-claim AUROC, and what claims mode costs in tokens.

Reads a ``candor calibrate`` cache of a multi-part dataset (collected in claims mode; no
engine) and fits the artifact once per split seed, so the held-out figures come with
their spread over splits:

    .venv/bin/candor calibrate --dataset ladder-parts --n 400 --max-tokens 64 \\
        --max-stage 1 --collect-only --cache runs/ship/ladder-parts.jsonl
    .venv/bin/python benchmarks/claims.py --cache runs/ship/ladder-parts.jsonl \\
        --dataset ladder-parts --n 400 --max-tokens 64 --max-stage 1

Per split seed, on the held-out answers (in scope): the share of answers that keep a
wrong claim and the share of correct claims kept, (a) served at the certified claim
threshold, (b) keeping every claim, (c) the whole-answer decision at the default target
risk (all claims of answered answers, none of abstained ones); the per-claim AUROC of the
fused claim map and of each single signal; and tokens per answer in claims mode (greedy +
the samples the claims' support reads) against the answer-level cascade's own stop.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from service.calibration.build import build_artifact
from service.calibration.collect import CollectSettings, read_cache
from service.calibration.pinning import ServingSettings
from service.calibration.records import Record, to_records
from service.labelled.datasets import load_dataset
from service.offline.collection import load_serving


def records_of(args: argparse.Namespace) -> tuple[list[Record], ServingSettings]:
    serving = load_serving(args.cache)
    if serving is None:
        raise SystemExit(f"{args.cache.with_suffix('.serving.json')} is missing: not a "
                         "calibrate cache")
    pinned = ServingSettings.model_validate(serving)
    items = load_dataset(args.dataset, n=args.n, seed=args.seed)
    cfg = CollectSettings(max_tokens=args.max_tokens, max_stage=args.max_stage,
                          serving=pinned.fingerprint(), instruction=pinned.math_instruction,
                          claims=any(it.parts for it in items))
    cached = read_cache(args.cache)
    have = [(it, cached[cfg.key(it)]) for it in items if cfg.key(it) in cached]
    if not have:
        raise SystemExit(f"no answer of {args.dataset} (n={args.n}) in {args.cache}")
    recs = to_records([it for it, _ in have], [r for _, r in have], None)
    return recs, pinned


def tokens(records: list[Record], min_stage: int) -> tuple[float, float]:
    """Mean completion tokens per answer: claims mode (greedy + the stages up to the one
    whose samples the claim map reads) and the greedy pass alone."""
    claims = [sum(r.tokens[: min_stage + 1]) for r in records]
    return float(np.mean(claims)), float(np.mean([r.tokens[0] for r in records]))


def one_split(records: list[Record], serving: ServingSettings, seed: int,
              args: argparse.Namespace) -> dict[str, Any]:
    art = build_artifact(records, dataset=args.dataset, settings=serving, seed=seed,
                         delta=args.delta, holdout=args.holdout,
                         default_alpha=args.default_alpha, claim_alpha=args.claims_alpha)
    assert art.claims is not None, "no record was collected in claims mode"
    h = art.claims.heldout
    answer_level = next((r for r in art.heldout.get("risk", [])
                         if abs(r["alpha"] - art.default_alpha) < 1e-9), None)
    return {"seed": seed, "threshold": art.claims.threshold, "answers": h["answers"],
            "served": h.get("served"), "keep_all": h["keep_all"],
            "whole": h.get("whole_answer"), "auroc": h["auroc"],
            "features": art.claims.map["features"], "min_stage": art.claims.min_stage,
            "whole_stage": answer_level["mean_stage"] if answer_level else None}


def fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def report(rows: list[dict[str, Any]], records: list[Record], alpha: float) -> None:
    print(f"claim target risk alpha = {alpha:g}; {len(records)} answers, "
          f"{sum(len(r.claims or ()) for r in records)} claims, "
          f"{np.mean([not c.correct for r in records for c in r.claims or ()]):.3f} of claims "
          "wrong")
    print("seed  t      held  violation: served keep-all whole   correct kept: served "
          "keep-all whole   AUROC map")
    for r in rows:
        s, k, w = r["served"] or {}, r["keep_all"], r["whole"] or {}
        print(f"{r['seed']:>4}  {fmt(r['threshold'])}  {r['answers']:>4}  "
              f"{fmt(s.get('violation_rate')):>17} {fmt(k['violation_rate'])}    "
              f"{fmt(w.get('violation_rate'))}   {fmt(s.get('correct_kept')):>19} "
              f"{fmt(k['correct_kept'])}    {fmt(w.get('correct_kept'))}   "
              f"{fmt(r['auroc']['map'])}")
    served = [r["served"] for r in rows if r["served"]]
    print(f"served in {len(served)}/{len(rows)} splits; held-out violation <= alpha in "
          f"{sum(s['violation_rate'] <= alpha for s in served)}/{len(served)}")
    for key in ("violation_rate", "correct_kept"):
        for name, pick in (("served", "served"), ("keep-all", "keep_all"),
                           ("whole-answer", "whole")):
            vals = [r[pick][key] for r in rows if r[pick] and r[pick][key] is not None]
            if vals:
                print(f"  mean {key} {name}: {statistics.mean(vals):.3f} "
                      f"(min {min(vals):.3f}, max {max(vals):.3f})")
    names = sorted({k for r in rows for k in r["auroc"]})
    print("per-claim AUROC (mean over splits): " + ", ".join(
        f"{n} {statistics.mean(r['auroc'][n] for r in rows if r['auroc'].get(n) is not None):.3f}"
        for n in names if any(r["auroc"].get(n) is not None for r in rows)))
    print("claim map inputs: " + "; ".join(sorted({", ".join(r["features"]) for r in rows})))
    c, g = tokens(records, max(r["min_stage"] for r in rows))
    print(f"completion tokens per answer: claims mode {c:.1f}, greedy alone {g:.1f} "
          f"(ratio {c / g:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--dataset", default="ladder-parts")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0, help="dataset seed")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-stage", type=int, default=1)
    ap.add_argument("--splits", type=int, default=10, help="split seeds 0..splits-1")
    ap.add_argument("--delta", type=float, default=0.1)
    ap.add_argument("--holdout", type=float, default=0.3)
    ap.add_argument("--default-alpha", type=float, default=0.3)
    ap.add_argument("--claims-alpha", type=float, default=0.1)
    args = ap.parse_args()
    records, serving = records_of(args)
    rows = [one_split(records, serving, s, args) for s in range(args.splits)]
    report(rows, records, args.claims_alpha)


if __name__ == "__main__":
    main()
