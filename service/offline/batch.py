"""Batch collection through an in-process engine: the server's own cascade, no HTTP.

``candor calibrate`` / ``candor eval`` without ``--server`` build the same
``CandorState`` the server builds (same settings, same signal code, uncalibrated) and
start its engine with ``service.bootstrap`` (as ``candor serve`` does), then run every
question's cascade (``policy.run_all``) at once: all greedy passes reach the engine
together and batch, and each question's sampling request follows as soon as its greedy
answer is in. Every response is appended to the same JSONL cache as the HTTP path
(``service/calibration/collect.py``), so an interrupted run resumes and refitting needs
no engine. The HTTP path stays for calibrating a remote deployment (``--server URL``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from service import schemas
from service.bootstrap import Starter, start_state
from service.calibration.collect import CollectError, CollectSettings, read_cache, request_body
from service.calibration.pinning import ServingSettings
from service.config import Settings
from service.labelled.items import Item
from service.state import CandorState


def require_started(state: CandorState) -> None:
    """One line (the load error ``bootstrap.load_engine`` recorded) when the engine did
    not start."""
    if state.cascade is None:
        raise CollectError(f"the in-process engine did not start: {state.load_error}")


async def collect_local(items: Sequence[Item], cache: Path, cfg: CollectSettings,
                        settings: Settings, start: Starter, progress: bool = True,
                        on_serving: Callable[[ServingSettings], CollectSettings] | None = None,
                        ) -> tuple[list[dict[str, Any]], ServingSettings]:
    """One response per item, in order, through an in-process cascade; ``start`` starts
    its engine (``service.bootstrap.load_engine``, or a fake in tests)."""
    state = await start_state(settings.model_copy(update={"calibration": "none"}), start)
    require_started(state)
    assert state.cascade is not None
    cascade = state.cascade
    serving = state.serving().model_copy(update={"answer_max_tokens": cfg.max_tokens,
                                                 "system_prompt": None})
    if on_serving is not None:  # the cache key needs the engine's own fingerprint
        cfg = on_serving(serving)
    cache.parent.mkdir(parents=True, exist_ok=True)
    done = read_cache(cache)
    todo = [it for it in items if cfg.key(it) not in done]
    bar = tqdm(total=len(items), initial=len(items) - len(todo), disable=not progress,
               desc="calibrate", unit="q")
    sem = asyncio.Semaphore(cfg.concurrency)
    try:
        with open(cache, "a", encoding="utf-8") as fh:
            async def one(item: Item) -> None:
                req = schemas.AnswerRequest.model_validate(request_body(item, cfg))
                async with sem:
                    resp = (await cascade.answer(req)).response
                key = cfg.key(item)
                done[key] = resp.model_dump(mode="json")
                fh.write(json.dumps({"key": key, "id": item.id, "response": done[key]}) + "\n")
                fh.flush()
                bar.update(1)

            outcomes = await asyncio.gather(*(one(it) for it in todo), return_exceptions=True)
    finally:
        bar.close()
        if state.engine is not None:
            await state.engine.aclose()
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    if failed:
        raise CollectError(
            f"{len(failed)} of {len(todo)} questions got no answer; the other "
            f"{len(todo) - len(failed)} are cached in {cache}, so the same command resumes. "
            f"First failure: {type(failed[0]).__name__}: {failed[0]}")
    return [done[cfg.key(it)] for it in items], serving
