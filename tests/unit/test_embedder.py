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
