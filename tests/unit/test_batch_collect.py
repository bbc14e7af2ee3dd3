"""Batch collection: the server's own cascade in-process (fake engine here), cached and
resumable like the HTTP path, with the serving settings of the state it built."""

from __future__ import annotations

import asyncio
from pathlib import Path

from service.calibration.collect import CollectSettings, read_cache
from service.config import Settings
from service.labelled.items import Item
from service.offline.batch import collect_local
from service.state import CandorState
from tests.fakes import FakeEmbedder, FakeEngine
from tests.unit.test_calibration_api import SCRIPTS

ITEMS = [Item(f"q{i}", key, "0", "numeric") for i, key in enumerate(SCRIPTS)]


def starter(engine: FakeEngine):  # type: ignore[no-untyped-def]
    async def start(state: CandorState) -> None:
        state.attach(engine, FakeEmbedder())
    return start


def test_batch_collection_runs_the_cascade_and_resumes(tmp_path: Path) -> None:
    cache = tmp_path / "c.jsonl"
    cfg = CollectSettings(max_tokens=12, max_stage=3, concurrency=64)
    engine = FakeEngine(scripts=SCRIPTS)
    out, serving = asyncio.run(collect_local(ITEMS, cache, cfg, Settings(samples_n=4),
                                             starter(engine), progress=False))
    assert len(out) == len(ITEMS) and serving.answer_max_tokens == 12
    assert serving.samples_n == 4 and serving.chat_template == "fake-template"
    for resp in out:  # run_all: every stage's signals are recorded
        assert [s["stage"] for s in resp["stages"]] == [0, 1, 2, 3]
        assert resp["samples"] and resp["calibration"]["reason"].startswith("uncalibrated")
    assert engine.closed and len(read_cache(cache)) == len(ITEMS)
    again = FakeEngine(scripts=SCRIPTS)
    out2, _ = asyncio.run(collect_local(ITEMS, cache, cfg, Settings(samples_n=4),
                                        starter(again), progress=False))
    assert out2 == out and not again.calls  # everything came from the cache
