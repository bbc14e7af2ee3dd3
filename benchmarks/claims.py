"""Claims mode, measured: the claim-level promise against keeping every claim and against
the whole-answer decision, per-claim AUROC, and what claims mode costs in tokens.

Reads a ``candor calibrate`` cache of a multi-part dataset (collected in claims mode; no
engine) and fits the artifact once per split seed, so the held-out figures come with
their spread over splits:

    candor calibrate --dataset ladder-parts --n 400 --max-tokens 64 --max-stage 1 \\
        --profile parts --tasks math --default-alpha 0.3 --claims-alpha 0.1 \\
        --out runs/calibration/parts.json   # docs/claims.md, stage 1; fills the cache
    .venv/bin/python benchmarks/claims.py --cache runs/cache/ladder-parts-s1-t64.jsonl \\
        --dataset ladder-parts --n 400 --max-tokens 64 --max-stage 1

Per target risk alpha and split seed, on the held-out answers (in scope): the share of
answers that keep a wrong claim and the share of correct claims kept, (a) served at the
claim threshold certified at alpha, (b) keeping every claim, (c) the whole-answer
decision with alpha as the default target risk (all claims of answered answers, none of
abstained ones; nothing when alpha is not certified for whole answers); the per-claim
AUROC of the fused claim map and of each single signal; and completion tokens per answer
in claims mode (the cascade's own stop, or later: the samples the claims' support reads)
against the answer-level cascade alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cached_rows import cached  # noqa: E402
from service.calibration.artifact import CalibratedModel  # noqa: E402
from service.calibration.build import build_artifact, default_outcome  # noqa: E402
from service.calibration.pinning import ServingSettings  # noqa: E402
from service.calibration.records import Record, to_records  # noqa: E402


def records_of(args: argparse.Namespace) -> tuple[list[Record], ServingSettings]:
    have, pinned = cached(args.cache, args.dataset, args.n, args.seed, args.max_tokens,
                          args.max_stage)
    if not have:
        raise SystemExit(f"no answer of {args.dataset} (n={args.n}) in {args.cache}")
    return to_records([it for _, it, _ in have], [r for _, _, r in have], None), pinned


def token_only(records: list[Record]) -> list[Record]:
    """The same records with each claim's ``support`` left out: claims mode from the greedy
    pass alone (no samples drawn for the claims)."""
    return [replace(r, claims=[replace(c, features={k: v for k, v in c.features.items()
                                                    if k != "support"})
                               for c in r.claims or ()]) for r in records]


def one_split(records: list[Record], serving: ServingSettings, seed: int, alpha: float,
              args: argparse.Namespace) -> dict[str, Any]:
    """One split's held-out figures, the claim promise and the whole-answer default both
    at ``alpha``, and the completion tokens per held-out answer of each."""
    art = build_artifact(records, dataset=args.dataset, settings=serving, seed=seed,
                         delta=args.delta, holdout=args.holdout, default_alpha=alpha,
                         claim_alpha=alpha)
    assert art.claims is not None, "no record was collected in claims mode"
    held = [r for r in records if r.key in set(art.split_keys["heldout"])]
    whole = default_outcome(CalibratedModel(art), held)
    answered, stop = whole.answered, whole.stage
    m = art.claims.min_stage
    h = art.claims.heldout
    return {"seed": seed, "threshold": art.claims.threshold, "answers": h["answers"],
            "served": h.get("served"), "keep_all": h["keep_all"],
            "whole": h.get("whole_answer"), "auroc": h["auroc"],
            "features": art.claims.map["features"], "answered": float(answered.mean()),
            "min_stage": m,
            "tokens_claims": float(np.mean([sum(r.tokens[: max(m, k) + 1])
                                            for r, k in zip(held, stop, strict=True)])),
            "tokens_whole": float(np.mean([sum(r.tokens[: k + 1])
                                           for r, k in zip(held, stop, strict=True)]))}


def fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def mean(rows: list[dict[str, Any]], pick: str, key: str) -> str:
    vals = [r[pick][key] for r in rows if r[pick] and r[pick].get(key) is not None]
    return (f"{statistics.mean(vals):.3f} [{min(vals):.3f}, {max(vals):.3f}]" if vals
            else "-")


def report(by_alpha: dict[float, list[dict[str, Any]]],
           tokens_only: dict[float, list[dict[str, Any]]], records: list[Record]) -> None:
    print(f"{len(records)} answers, {sum(len(r.claims or ()) for r in records)} claims, "
          f"{np.mean([not c.correct for r in records for c in r.claims or ()]):.3f} of claims "
          f"wrong, {np.mean([not r.correct for r in records]):.3f} of answers with a wrong "
          "claim; held-out figures: mean [min, max] over split seeds")
    for alpha, rows in by_alpha.items():
        served = [r for r in rows if r["served"]]
        print(f"\nalpha = {alpha:g}: claim threshold certified in {len(served)}/{len(rows)} "
              f"splits; held-out share of answers keeping a wrong claim <= alpha in "
              f"{sum(r['served']['violation_rate'] <= alpha for r in served)}/{len(served)}")
        for name, pick, of in (("claims, served", "served", rows),
                               ("claims, token-only map", "served", tokens_only[alpha]),
                               ("keep every claim", "keep_all", rows),
                               ("whole-answer decision", "whole", rows)):
            print(f"  {name:<22} wrong kept: {mean(of, pick, 'violation_rate'):<24} "
                  f"correct claims kept: {mean(of, pick, 'correct_kept')}")
        print(f"  whole answers answered: {statistics.mean(r['answered'] for r in rows):.3f}; "
              "completion tokens per answer: claims mode "
              f"{statistics.mean(r['tokens_claims'] for r in rows):.1f} (token-only map "
              f"{statistics.mean(r['tokens_claims'] for r in tokens_only[alpha]):.1f}), "
              "answer-level cascade "
              f"{statistics.mean(r['tokens_whole'] for r in rows):.1f}")
    rows = next(iter(by_alpha.values()))
    names = sorted({k for r in rows for k in r["auroc"]})
    print("\nper-claim AUROC, held out (mean over splits): " + ", ".join(
        f"{n} {statistics.mean(r['auroc'][n] for r in rows if r['auroc'].get(n) is not None):.3f}"
        for n in names if any(r["auroc"].get(n) is not None for r in rows)))
    print("claim map inputs: " + "; ".join(sorted({", ".join(r["features"]) for r in rows})))
    plain = next(iter(tokens_only.values()))
    print("token-only claim map, per-claim AUROC held out (mean over splits): "
          f"{statistics.mean(r['auroc']['map'] for r in plain):.3f}")


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
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5],
                    help="target risks: each is both the claim alpha and the answer default")
    args = ap.parse_args()
    records, serving = records_of(args)
    plain = token_only(records)
    report({a: [one_split(records, serving, s, a, args) for s in range(args.splits)]
            for a in args.alphas},
           {a: [one_split(plain, serving, s, a, args) for s in range(args.splits)]
            for a in args.alphas}, records)


if __name__ == "__main__":
    main()
