"""The server's embedder draws no progress bar (sentence-transformers draws one per encode
call whenever logging is at INFO, i.e. one line of noise in the server log per request)."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.signals.embedder import Embedder


class Model:
    def __init__(self) -> None:
        self.kwargs: list[dict[str, Any]] = []

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        self.kwargs.append(kwargs)
        return np.ones((len(texts), 3))


def embedder(progress: bool) -> tuple[Embedder, Model]:
    e = Embedder.__new__(Embedder)  # no model load: only the call is under test
    e.model, e.progress = Model(), progress  # type: ignore[assignment]
    return e, e.model  # type: ignore[return-value]


def test_no_progress_bar_unless_asked() -> None:
    quiet, model = embedder(progress=False)
    assert quiet.encode_sync(["a", "b"]).shape == (2, 3)
    assert model.kwargs[-1]["show_progress_bar"] is False
    loud, model = embedder(progress=True)
    loud.encode_sync(["a"])
    assert model.kwargs[-1]["show_progress_bar"] is True
    assert Embedder.__init__.__defaults__ == (None, False)  # quiet by default


class Rows(Model):
    """Row i of a batch encodes its text's length, so slices can be checked."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        self.batches.append(list(texts))
        if "boom" in texts:
            raise RuntimeError("model failed")
        return np.array([[float(len(t))] for t in texts])


def batching() -> tuple[Embedder, Rows]:
    from concurrent.futures import ThreadPoolExecutor

    e = Embedder.__new__(Embedder)  # no model load: only the batching is under test
    e.model, e.progress = Rows(), False  # type: ignore[assignment]
    e._pool, e._pending, e._worker = ThreadPoolExecutor(1), [], None
    return e, e.model  # type: ignore[return-value]


def test_concurrent_callers_share_model_calls_and_get_their_own_rows() -> None:
    import asyncio

    e, model = batching()

    async def main() -> list[np.ndarray]:
        return await asyncio.gather(*(e.encode(["x" * (i + 1), "y"]) for i in range(8)))

    outs = asyncio.run(main())
    assert [o[:, 0].tolist() for o in outs] == [[i + 1.0, 1.0] for i in range(8)]
    assert len(model.batches) <= 2 and sum(map(len, model.batches)) == 16, model.batches


def test_a_failed_batch_fails_its_callers_and_the_next_batch_runs() -> None:
    import asyncio

    import pytest

    e, _ = batching()

    async def main() -> np.ndarray:
        with pytest.raises(RuntimeError, match="model failed"):
            await e.encode(["boom"])
        return await e.encode(["ok"])

    assert asyncio.run(main())[:, 0].tolist() == [2.0]
