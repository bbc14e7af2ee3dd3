"""No per-request noise in the server log: a request that runs the embedder (the semantic
stage, here through ``/v1/score``, which generates nothing) leaves no sentence-transformers
progress bar behind (``Batches: 100%|...``)."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import LiveServer

pytestmark = pytest.mark.integration


def test_embedding_prints_no_progress_bar(live_server: LiveServer, api: httpx.Client) -> None:
    start = live_server.log_path.stat().st_size  # start-up bars (weights loading) are fine
    for _ in range(2):
        r = api.post("/v1/score", json={
            "question": "Name a primary colour.", "answer": "Red",
            "samples": ["Red", "Blue", "red", "Yellow"]})
        assert r.status_code == 200
    assert "semantic" in [s["name"] for s in r.json()["stages"]]
    assert r.json()["signals"]["semantic_entropy"] is not None  # the embedder ran
    with open(live_server.log_path, "rb") as f:
        f.seek(start)
        log = f.read().decode(errors="replace")
    assert "Batches" not in log and "it/s]" not in log, log[-2000:]
