"""Run the real cascade on labelled questions through a Candor server, with a cache.

Every question is sent to ``POST /v1/answer`` with ``policy.run_all`` (all stages,
no early exit) so every stage's signals are recorded; the policy is replayed
offline (``simulate.py``). Requests run concurrently (the engine batches them),
a tqdm bar shows progress, and each response is appended to a JSONL cache keyed
by question + settings, so an interrupted run resumes where it stopped. A question
that fails (timeout, HTTP error) does not stop the others: every answer that arrives
is cached, and the run ends with one ``CollectError`` that says how many failed.
The key holds the request's settings and the fingerprint of the server's signal
settings (sampling temperature, number of samples, ...), so answers collected under
other settings are never reused. Multi-part questions are collected in claims mode
(``claims: true``), so each response carries each claim's signals.
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

from service.labelled.items import Item


@dataclass(frozen=True)
class CollectSettings:
    max_tokens: int = 24
    max_stage: int = 3
    concurrency: int = 8
    # One cascade with run_all waits for its turn in the engine batch: at 24 in flight on
    # 2 CPU cores a question with 10 samples took ~10 minutes. The server's own budget cap
    # (CANDOR_MAX_BUDGET_MS) ends every request, so the client may wait long.
    timeout_s: float = 3600.0
    serving: str = ""  # fingerprint of the server's signal settings (pinning.py)
    instruction: str | None = None  # the math instruction: the key holds the prompt

    def key(self, item: Item) -> str:
        """Multi-part questions are asked in claims mode, and their key says so."""
        from service.cascade.providers import with_instruction

        prompt = with_instruction(item.question, item.task, self.instruction)
        fields: list[object] = [prompt, item.task, self.max_tokens, self.max_stage,
                                self.serving]
        raw = json.dumps(fields + ["claims"] if item.parts else fields)
        return hashlib.sha256(raw.encode()).hexdigest()[:24]


class CollectError(RuntimeError):
    """Some questions got no answer; the rest are cached and a rerun resumes."""


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
    """The ``/v1/answer`` body a question is collected with (HTTP and in-process alike)."""
    return {
        "question": item.question, "task": item.task, "max_tokens": cfg.max_tokens,
        "policy": {"run_all": True, "max_stage": cfg.max_stage},
        "return_samples": True, "claims": bool(item.parts),
    }


async def _one(client: httpx.AsyncClient, item: Item, cfg: CollectSettings) -> dict[str, Any]:
    for attempt in range(5):
        try:
            r = await client.post("/v1/answer", json=request_body(item, cfg))
        except httpx.TimeoutException as exc:
            raise CollectError(f"{item.id}: no answer within {cfg.timeout_s:.0f} s (raise "
                               "--timeout or lower --concurrency)") from exc
        except httpx.TransportError as exc:
            raise CollectError(f"{item.id}: cannot reach {client.base_url}: {exc!r}") from exc
        if r.status_code in (429, 503) and attempt < 4:
            await asyncio.sleep(float(r.headers.get("Retry-After", "2")))
            continue
        if r.status_code != 200:
            raise CollectError(f"{item.id}: HTTP {r.status_code}: {r.text[:300]}")
        data: dict[str, Any] = r.json()
        return data
    raise CollectError(f"{item.id}: server stayed busy (429/503 five times)")


async def collect(items: Sequence[Item], server: str, cache: Path,
                  cfg: CollectSettings, progress: bool = True,
                  transport: httpx.AsyncBaseTransport | None = None) -> list[dict[str, Any]]:
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

    async with httpx.AsyncClient(base_url=server, timeout=cfg.timeout_s,
                                 transport=transport) as client:
        with open(cache, "a", encoding="utf-8") as fh:
            # every question runs to its end, so one failure loses no other answer
            outcomes = await asyncio.gather(*(run(client, it, fh) for it in todo),
                                            return_exceptions=True)
    bar.close()
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    bugs = [o for o in failed if not isinstance(o, CollectError)]
    if bugs:
        raise bugs[0]
    if failed:
        raise CollectError(
            f"{len(failed)} of {len(todo)} questions got no answer; the other "
            f"{len(todo) - len(failed)} are cached in {cache}, so the same command resumes. "
            f"First failure: {failed[0]}")
    return [done[cfg.key(it)] for it in items]
