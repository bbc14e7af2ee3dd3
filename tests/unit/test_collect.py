"""``collect``: a failing question loses no other answer, and a rerun asks only what is missing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from service.calibration.collect import CollectError, CollectSettings, collect, read_cache
from service.labelled.datasets import Item

ITEMS = [Item(f"q{i}", f"What is {i} + 1?", str(i + 1), "numeric") for i in range(4)]
CFG = CollectSettings(max_tokens=8, max_stage=0, concurrency=4)


def transport(asked: list[str], fail: set[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        q = json.loads(request.content)["question"]
        asked.append(q)
        if q in fail:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"answer": q.split()[2], "model": "m", "signals": {}})
    return httpx.MockTransport(handle)


def test_a_timeout_keeps_the_other_answers_and_a_rerun_resumes(tmp_path: Path) -> None:
    cache = tmp_path / "c.jsonl"
    asked: list[str] = []
    with pytest.raises(CollectError, match=r"1 of 4 questions got no answer.*same command"):
        asyncio.run(collect(ITEMS, "http://x", cache, CFG, progress=False,
                            transport=transport(asked, {ITEMS[1].question})))
    assert len(read_cache(cache)) == 3  # the three answers that arrived are kept
    asked.clear()
    out = asyncio.run(collect(ITEMS, "http://x", cache, CFG, progress=False,
                              transport=transport(asked, set())))
    assert asked == [ITEMS[1].question]  # only the missing one is asked again
    assert [r["answer"] for r in out] == ["0", "1", "2", "3"]


def test_http_errors_are_named(tmp_path: Path) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "max_tokens too large"}})
    with pytest.raises(CollectError, match=r"q0: HTTP 400.*max_tokens too large"):
        asyncio.run(collect(ITEMS[:1], "http://x", tmp_path / "c.jsonl", CFG, progress=False,
                            transport=httpx.MockTransport(handle)))
