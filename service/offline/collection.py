"""What ``candor calibrate`` and ``candor eval`` share: the collection flags, and one
cascade response per question of a dataset.

From the JSONL cache (``--cache``: keyed by question, request settings and serving
fingerprint, so a rerun only asks what is missing), from a server over HTTP (``--server
URL``, with that server's settings, its report at ``GET /v1/calibration``;
``service/calibration/collect.py``), or else in large batches through the server's own
cascade on an in-process engine (``batch.py``), started by ``service.bootstrap`` with
exactly the serving settings of this environment. The settings used are pinned next to
the cache (``<cache>.serving.json``) and into the artifact.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.bootstrap import Starter, load_engine
from service.calibration.collect import CollectError, CollectSettings, collect
from service.calibration.pinning import ServingSettings, compare, serving_settings
from service.labelled.datasets import DATA_DIR, DATASETS, load_dataset
from service.labelled.items import Item
from service.vocab import MAX_STAGE, N_STAGES

if TYPE_CHECKING:
    from service.config import Settings


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=None,
                   help=f"{' | '.join(DATASETS)} | path.jsonl | path.csv")
    p.add_argument("--n", type=int, default=None, help="questions (seeded subset)")
    p.add_argument("--seed", type=int, default=0, help="dataset subset / ladder seed")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR,
                   help="where the named datasets are (default: the packaged ones)")
    p.add_argument("--server", default=None,
                   help="Candor base URL (HTTP); unset: batch through an in-process engine")
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--max-stage", type=int, default=MAX_STAGE, choices=range(N_STAGES),
                   help="highest stage collected (0: greedy only, cheapest)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="questions in flight (default: 8 over HTTP, 128 in-process)")
    p.add_argument("--timeout", type=float, default=CollectSettings.timeout_s,
                   help="seconds to wait for one question's cascade")
    p.add_argument("--cache", type=Path, default=None, help="JSONL response cache")
    p.add_argument("--no-progress", action="store_true")


def serving_for(args: argparse.Namespace, reported: dict[str, Any] | None) -> ServingSettings:
    """The serving settings of this collection (pinned into the artifact).

    From the server's own report (``GET /v1/calibration``) when one was asked, else
    what ``candor serve`` would use in this environment; the answer ``max_tokens`` is
    the one the questions were asked with.
    """
    if reported is None:
        from service.config import Settings

        base = serving_settings(Settings()).model_dump()
    else:
        base = dict(reported)
    return ServingSettings.model_validate({**base, "answer_max_tokens": args.max_tokens,
                                           "system_prompt": None})


def gather(args: argparse.Namespace, start: Starter = load_engine,
           ) -> tuple[list[Item], list[dict[str, Any]], ServingSettings]:
    """Load the dataset and get one cascade response per question: from the cache, a
    server (``--server``), or else an in-process engine that ``start`` starts (the way
    ``candor serve`` starts it; tests pass a fake)."""
    if args.dataset is None:
        raise SystemExit("candor: --dataset is required (or, for calibrate, --from-log)")
    try:
        items = load_dataset(args.dataset, args.data_dir, args.n, args.seed)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"candor: {exc}") from exc
    name = Path(args.dataset).stem
    stem = f"{name}-s{args.max_stage}-t{args.max_tokens}"
    cache = args.cache or Path("runs") / "cache" / f"{stem}.jsonl"

    def settings_for(url: str) -> ServingSettings:
        return serving_for(args, fetch_serving(url) if url else None)

    def config(serving: ServingSettings) -> CollectSettings:
        return CollectSettings(max_tokens=args.max_tokens, max_stage=args.max_stage,
                               concurrency=args.concurrency or 8, timeout_s=args.timeout,
                               serving=serving.fingerprint(),
                               instruction=serving.math_instruction)

    async def run(url: str, cfg: CollectSettings) -> list[dict[str, Any]]:
        try:
            return await collect(items, url, cache, cfg, progress=not args.no_progress)
        except CollectError as exc:
            raise SystemExit(f"candor: {exc}") from exc

    if args.server:
        serving = settings_for(args.server)
        save_serving(cache, serving)
        return items, asyncio.run(run(args.server, config(serving))), serving
    from service.calibration.collect import read_cache

    serving = local = serving_for(args, None)
    saved = load_serving(cache)
    if saved is not None:  # the engine that filled the cache knew its chat template
        kept = serving_for(args, saved)
        if not compare(kept, local, check_template=False)[0]:
            serving = kept
    cfg, cached = config(serving), read_cache(cache)
    if all(cfg.key(it) in cached for it in items):
        return items, [cached[cfg.key(it)] for it in items], serving
    from service.offline.batch import collect_local

    # stdout carries the command's JSON result: the in-process engine logs to stderr
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

    def pinned(engine_serving: ServingSettings) -> CollectSettings:
        save_serving(cache, engine_serving)
        return config(engine_serving)

    try:
        responses, serving = asyncio.run(collect_local(
            items, cache, replace(config(serving), concurrency=args.concurrency or 128),
            local_settings(args.max_tokens), start, progress=not args.no_progress,
            on_serving=pinned))
    except CollectError as exc:
        raise SystemExit(f"candor: {exc}") from exc
    return items, responses, serving


def local_settings(max_tokens: int) -> Settings:
    """This environment's serving settings for an in-process collection: only the token
    limit (when the questions ask for more) and the per-request budget change, neither
    of which changes a signal."""
    from service.config import Settings

    s = Settings()
    return s.model_copy(update={"max_tokens_limit": max(s.max_tokens_limit, max_tokens),
                                "max_budget_ms": 3_600_000})


def fetch_serving(url: str) -> dict[str, Any]:
    import httpx

    try:
        r = httpx.get(f"{url.rstrip('/')}/v1/calibration", timeout=30)
        r.raise_for_status()
        serving: dict[str, Any] = r.json()["serving"]
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise SystemExit(f"candor: cannot read the serving settings of {url} "
                         f"(GET /v1/calibration): {exc}") from exc
    return serving


def save_serving(cache: Path, serving: ServingSettings) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.with_suffix(".serving.json").write_text(serving.model_dump_json(indent=1))


def load_serving(cache: Path) -> dict[str, Any] | None:
    path = cache.with_suffix(".serving.json")
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
