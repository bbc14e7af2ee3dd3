"""No per-request noise in the server log: a request that runs the embedder (stage 2)
leaves no sentence-transformers progress bar behind (``Batches: 100%|...``)."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration


def test_semantic_stage_prints_no_progress_bar(live_server: LiveServer,
                                               api: httpx.Client) -> None:
    start = live_server.log_path.stat().st_size  # start-up bars (weights loading) are fine
    r = api.post("/v1/answer", json={
        "question": "Name a primary colour.", "max_tokens": 6,
        "policy": {"max_stage": 2, "run_all": True}})
    assert r.status_code == 200 and r.json()["stage_reached"] == 2
    assert "semantic" in [s["name"] for s in r.json()["stages"]]
    with open(live_server.log_path, "rb") as f:
        f.seek(start)
        log = f.read().decode(errors="replace")
    assert "Batches" not in log and "it/s]" not in log, live_server.log_tail(20)
