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

from service.calibration.collect import CollectError, CollectSettings, collect
from service.eval.datasets import DATASETS, Item, load_dataset

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
log = logging.getLogger("candor.calibrate")


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=None, help=f"{' | '.join(DATASETS)} | path.jsonl")
    p.add_argument("--n", type=int, default=None, help="questions (seeded subset)")
    p.add_argument("--seed", type=int, default=0, help="dataset subset / ladder seed")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--server", default=None, help="Candor base URL; unset: start one")
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--max-stage", type=int, default=3, choices=range(4),
                   help="highest stage collected (0: greedy only, cheapest)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--timeout", type=float, default=CollectSettings.timeout_s,
                   help="seconds to wait for one question's cascade")
    p.add_argument("--cache", type=Path, default=None, help="JSONL response cache")
    p.add_argument("--no-progress", action="store_true")


def gather(args: argparse.Namespace) -> tuple[list[Item], list[dict[str, Any]]]:
    """Load the dataset and get one cascade response per question (cache, server)."""
    if args.dataset is None:
        raise SystemExit("candor: --dataset is required (or, for calibrate, --from-log)")
    try:
        items = load_dataset(args.dataset, args.data_dir, args.n, args.seed)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"candor: {exc}") from exc
    cfg = CollectSettings(max_tokens=args.max_tokens, max_stage=args.max_stage,
                          concurrency=args.concurrency, timeout_s=args.timeout)
    name = Path(args.dataset).stem
    stem = f"{name}-s{args.max_stage}-t{args.max_tokens}"
    cache = args.cache or Path("runs") / "cache" / f"{stem}.jsonl"

    async def run(url: str) -> list[dict[str, Any]]:
        try:
            return await collect(items, url, cache, cfg, progress=not args.no_progress)
        except CollectError as exc:
            raise SystemExit(f"candor: {exc}") from exc

    if args.server:
        return items, asyncio.run(run(args.server))
    from service.calibration.collect import read_cache

    cached = read_cache(cache)
    if all(cfg.key(it) in cached for it in items):
        return items, [cached[cfg.key(it)] for it in items]
    from service.calibration.server import local_server

    with local_server(cache.with_suffix(".server.log"), args.max_tokens) as url:
        return items, asyncio.run(run(url))


def from_log(path: Path) -> tuple[list[Item], list[dict[str, Any]], list[bool]]:
    """Labelled decisions of the SQLite decision log (``POST /v1/feedback`` labels).

    Caveat: logged requests exited early, so later stages ran only for questions the
    live policy escalated; the replay treats stages that did not run as skipped.
    """
    from service.decision_log import labelled_entries

    entries = labelled_entries(path)
    items = [Item(e["id"], e.get("question") or "", "", "numeric") for e in entries]
    responses = [{"answer": e.get("answer") or "", "model": e["model"], "stages": e["stages"],
                  "signals": e["signals"]} for e in entries]
    return items, responses, [bool(e["correct"]) for e in entries]


def _calibrate(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    labels: list[bool] | None = None
    if args.from_log:
        items, responses, labels = from_log(args.from_log)
        if not items:
            raise SystemExit(f"no labelled decisions in {args.from_log}")
    else:
        items, responses = gather(args)
    if args.collect_only:
        print(json.dumps({"dataset": args.dataset, "n": len(responses)}))
        return 0
    from service.calibration.artifact import save_artifact
    from service.calibration.build import build_artifact
    from service.calibration.records import from_response, to_records
    from service.eval.grading import make_encoder

    if labels is not None:
        records = [from_response(it, r, ok) for it, r, ok in zip(items, responses, labels,
                                                                  strict=True)]
    else:
        records = to_records(items, responses, make_encoder(items))
    name = Path(args.dataset).stem if args.dataset else "decision-log"
    art = build_artifact(records, dataset=name,
                         model_name=str(responses[0]["model"]), seed=args.split_seed,
                         delta=args.delta, holdout=args.holdout, alphas=args.alphas,
                         collect={"max_tokens": args.max_tokens, "max_stage": args.max_stage,
                                  "n": args.n, "seed": args.seed})
    out = args.out or Path("runs") / "calibration" / f"{name}.json"
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
    p.add_argument("--from-log", type=Path, default=None,
                   help="calibrate from labelled decisions in the SQLite decision log")
    p.set_defaults(func=_calibrate)
