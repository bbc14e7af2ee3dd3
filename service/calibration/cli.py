"""``candor calibrate``: collect labelled cascade runs, fit, pick thresholds, write the artifact.

    candor calibrate --dataset ladder --n 300 --split-seed 0 [--server URL] [--out PATH]

Without ``--server`` a local ``candor serve`` is started for the run (and stopped).
Responses are cached in ``--cache`` (JSONL), so a rerun only asks what is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from service.calibration.collect import CollectSettings, collect
from service.eval.datasets import DATASETS, Item, load_dataset

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
log = logging.getLogger("candor.calibrate")


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help=f"{' | '.join(DATASETS)} | path.jsonl")
    p.add_argument("--n", type=int, default=None, help="questions (seeded subset)")
    p.add_argument("--seed", type=int, default=0, help="dataset subset / ladder seed")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--server", default=None, help="Candor base URL; unset: start one")
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--max-stage", type=int, default=3, choices=range(4),
                   help="highest stage collected (0: greedy only, cheapest)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--cache", type=Path, default=None, help="JSONL response cache")
    p.add_argument("--no-progress", action="store_true")


def gather(args: argparse.Namespace) -> tuple[list[Item], list[dict[str, Any]]]:
    """Load the dataset and get one cascade response per question (cache, server)."""
    items = load_dataset(args.dataset, args.data_dir, args.n, args.seed)
    cfg = CollectSettings(max_tokens=args.max_tokens, max_stage=args.max_stage,
                          concurrency=args.concurrency)
    name = Path(args.dataset).stem
    stem = f"{name}-s{args.max_stage}-t{args.max_tokens}"
    cache = args.cache or Path("runs") / "cache" / f"{stem}.jsonl"

    async def run(url: str) -> list[dict[str, Any]]:
        return await collect(items, url, cache, cfg, progress=not args.no_progress)

    if args.server:
        return items, asyncio.run(run(args.server))
    from service.calibration.collect import read_cache

    cached = read_cache(cache)
    if all(cfg.key(it) in cached for it in items):
        return items, [cached[cfg.key(it)] for it in items]
    from service.calibration.server import local_server

    with local_server(cache.with_suffix(".server.log"), args.max_tokens) as url:
        return items, asyncio.run(run(url))


def _calibrate(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    items, responses = gather(args)
    if args.collect_only:
        print(json.dumps({"dataset": args.dataset, "n": len(responses)}))
        return 0
    from service.calibration.artifact import save_artifact
    from service.calibration.build import build_artifact
    from service.calibration.records import to_records
    from service.eval.grading import make_encoder

    records = to_records(items, responses, make_encoder(items))
    art = build_artifact(records, dataset=Path(args.dataset).stem,
                         model_name=str(responses[0]["model"]), seed=args.split_seed,
                         delta=args.delta, holdout=args.holdout, alphas=args.alphas,
                         collect={"max_tokens": args.max_tokens, "max_stage": args.max_stage,
                                  "n": args.n, "seed": args.seed})
    out = args.out or Path("runs") / "calibration" / f"{Path(args.dataset).stem}.json"
    save_artifact(art, out)
    print(json.dumps({"artifact": str(out), "id": art.id, "heldout": art.heldout}, indent=1))
    return 0


def add_calibrate_parser(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="fit calibration maps and risk-controlled thresholds")
    add_common(p)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--holdout", type=float, default=0.3, help="held-out fraction")
    p.add_argument("--delta", type=float, default=0.1, help="1 - delta = guarantee probability")
    p.add_argument("--alphas", type=float, nargs="+", default=None, help="target risks")
    p.add_argument("--out", type=Path, default=None, help="artifact path")
    p.add_argument("--collect-only", action="store_true", help="fill the cache and stop")
    p.set_defaults(func=_calibrate)
