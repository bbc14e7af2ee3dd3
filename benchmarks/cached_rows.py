"""Per-question rows from a ``candor calibrate`` cache, for the sampling benchmarks.

``candor calibrate --collect-only`` stores each question's full cascade (``run_all``,
``return_samples``) in its JSONL cache: the greedy answer and its signals, the N samples
in draw order, normalised. ``rows`` turns them into the rows
``benchmarks/homogeneity_rule.py --save`` writes, so both benchmarks also run on a
calibration collection (no engine):

    .venv/bin/python benchmarks/early_stop_sampling.py --cache runs/ship/ladder-mix.jsonl \\
        --dataset ladder-mix --n 450
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from service.calibration.collect import CollectSettings, read_cache
from service.calibration.pinning import ServingSettings
from service.labelled.datasets import DATA_DIR, load_dataset
from service.labelled.grading import grade
from service.labelled.items import Item
from service.offline.collection import load_serving
from service.signals.normalize import normalize_answer


def cached(cache: Path, dataset: str, n: int | None, seed: int = 0, max_tokens: int = 24,
           max_stage: int = 3, data_dir: Path = DATA_DIR,
           ) -> tuple[list[tuple[int, Item, dict[str, Any]]], ServingSettings]:
    """Each question of ``dataset`` answered in ``cache`` (index, item, response), found by
    the cache key ``candor calibrate`` wrote it under, and the serving settings it pinned."""
    serving = load_serving(cache)
    if serving is None:
        raise SystemExit(f"{cache.with_suffix('.serving.json')} is missing: not a calibrate cache")
    pinned = ServingSettings.model_validate(serving)
    cfg = CollectSettings(max_tokens=max_tokens, max_stage=max_stage,
                          serving=pinned.fingerprint(), instruction=pinned.math_instruction)
    answers = read_cache(cache)
    found = [(i, item, answers[cfg.key(item)])
             for i, item in enumerate(load_dataset(dataset, data_dir, n, seed))
             if cfg.key(item) in answers]
    return found, pinned


def rows(cache: Path, dataset: str, n: int | None, seed: int = 0, max_tokens: int = 24,
         max_stage: int = 3, data_dir: Path = DATA_DIR) -> list[dict[str, Any]]:
    """One row per question with samples in ``cache`` (questions without are skipped)."""
    out = []
    for i, item, resp in cached(cache, dataset, n, seed, max_tokens, max_stage, data_dir)[0]:
        if not resp.get("samples"):
            continue
        sig = resp["signals"]
        greedy = normalize_answer(resp["answer"], item.task)
        samples = [s["normalized"] for s in resp["samples"]]
        out.append({"i": i, "correct": float(grade(item, resp["answer"])),
                    "token": math.exp(-sig["mean_nll"]) if sig.get("mean_nll") is not None
                    else 0.0,
                    "agree": sum(s == greedy for s in samples) / len(samples),
                    "homogeneous": float(bool(sig.get("homogeneous"))), "greedy": greedy,
                    "samples": samples, "digits": int(item.meta.get("digits", 0))})
    return out
