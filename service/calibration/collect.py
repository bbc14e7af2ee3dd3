"""Run the real cascade on labelled questions through a Candor server, with a cache.

Every question is sent to ``POST /v1/answer`` with ``policy.run_all`` (all stages,
no early exit) so every stage's signals are recorded; the policy is replayed
offline (``simulate.py``). Requests run concurrently (the engine batches them),
a tqdm bar shows progress, and each response is appended to a JSONL cache keyed
by question + settings, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from service.eval.datasets import Item


@dataclass(frozen=True)
class CollectSettings:
    max_tokens: int = 24
    max_stage: int = 3
    concurrency: int = 8
    timeout_s: float = 600.0

    def key(self, item: Item) -> str:
        raw = json.dumps([item.question, item.task, self.max_tokens, self.max_stage])
        return hashlib.sha256(raw.encode()).hexdigest()[:24]


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """Responses already collected, by key (a torn last line is ignored)."""
    out: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            out[rec["key"]] = rec["response"]
    return out


def request_body(item: Item, cfg: CollectSettings) -> dict[str, Any]:
    return {
        "question": item.question, "task": item.task, "max_tokens": cfg.max_tokens,
        "policy": {"run_all": True, "max_stage": cfg.max_stage},
        "return_samples": True,
    }


async def _one(client: httpx.AsyncClient, item: Item, cfg: CollectSettings) -> dict[str, Any]:
    for attempt in range(5):
        r = await client.post("/v1/answer", json=request_body(item, cfg))
        if r.status_code in (429, 503) and attempt < 4:
            await asyncio.sleep(float(r.headers.get("Retry-After", "2")))
            continue
        if r.status_code != 200:
            raise RuntimeError(f"{item.id}: HTTP {r.status_code}: {r.text[:300]}")
        data: dict[str, Any] = r.json()
        return data
    raise RuntimeError(f"{item.id}: server stayed busy")


async def collect(items: Sequence[Item], server: str, cache: Path,
                  cfg: CollectSettings, progress: bool = True) -> list[dict[str, Any]]:
    """One response per item, in order; cached ones are not asked again."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    done = read_cache(cache)
    todo = [it for it in items if cfg.key(it) not in done]
    sem = asyncio.Semaphore(cfg.concurrency)
    bar = tqdm(total=len(items), initial=len(items) - len(todo), disable=not progress,
               desc="calibrate", unit="q")

    async def run(client: httpx.AsyncClient, item: Item, fh: Any) -> None:
        async with sem:
            resp = await _one(client, item, cfg)
        key = cfg.key(item)
        done[key] = resp
        fh.write(json.dumps({"key": key, "id": item.id, "response": resp}) + "\n")
        fh.flush()
        bar.update(1)

    async with httpx.AsyncClient(base_url=server, timeout=cfg.timeout_s) as client:
        with open(cache, "a", encoding="utf-8") as fh:
            await asyncio.gather(*(run(client, it, fh) for it in todo))
    bar.close()
    return [done[cfg.key(it)] for it in items]
