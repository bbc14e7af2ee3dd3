"""The signal protocol and the per-request context that computes shared inputs once.

A signal reads what it needs from a ``SignalContext`` (greedy tokens, samples,
embeddings, ...) and returns everything it found in its ``SignalResult`` (values,
confidence, the samples' clusters). The context computes each shared input at most once
per request, so the consistency and semantic signals share one batch of samples, and the
semantic and context-support signals share one batch of embeddings.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

import numpy as np

from service.errors import BadRequest


class MissingInput(Exception):
    """A signal's input is not available (e.g. no samples given to /v1/score)."""


@dataclass
class SignalResult:
    """Raw values under their public names, the confidence they imply, and whether they inform."""

    name: str
    values: dict[str, Any]
    confidence: float | None
    informative: bool = True
    note: str | None = None
    clusters: list[int] | None = None  # each sample's cluster (sampling signals)


class TextEncoder(Protocol):
    """An embedding model (``signals/embedder.py``): unit-normalisable vectors per text."""

    async def encode(self, texts: list[str]) -> np.ndarray: ...


class Entailer(Protocol):
    """An NLI model (``signals/nli.py``): P(entailment) per (premise, hypothesis) pair."""

    async def entail_probs(self, pairs: list[tuple[str, str]]) -> np.ndarray: ...


class Signal(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def requires(self) -> tuple[str, ...]: ...

    async def score(self, ctx: SignalContext) -> SignalResult: ...


def check_finite(values: Sequence[float], what: str) -> None:
    for v in values:
        if not math.isfinite(v):
            raise BadRequest(f"{what} must be finite numbers, got {v!r}", param=what)


class ContextProviders(TypedDict, total=False):
    """``SignalContext``'s provider fields, for callers that pass them on as keywords."""

    sample_provider: Callable[[], Awaitable[list[str]]] | None
    embed_provider: Callable[[list[str]], Awaitable[np.ndarray]] | None
    p_true_provider: Callable[[str, str], Awaitable[float | None]] | None
    nli_provider: Callable[[list[tuple[str, str]]], Awaitable[np.ndarray]] | None


@dataclass
class SignalContext:
    """Everything known about one request. Lazily filled, each piece at most once."""

    question: str
    task: str
    answer: str | None = None
    token_logprobs: list[float] | None = None
    top_logprobs: list[list[float]] | None = None
    samples: list[str] | None = None
    context: str | None = None
    # Providers for inputs that must be computed (None = not available here).
    sample_provider: Callable[[], Awaitable[list[str]]] | None = None
    embed_provider: Callable[[list[str]], Awaitable[np.ndarray]] | None = None
    p_true_provider: Callable[[str, str], Awaitable[float | None]] | None = None
    nli_provider: Callable[[list[tuple[str, str]]], Awaitable[np.ndarray]] | None = None
    _once: dict[str, Any] = field(default_factory=dict)  # shared inputs, computed once
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # per distinct text

    async def once(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """``make()``'s result, computed by the first caller and shared with the rest."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._once:
                self._once[key] = await make()
            return self._once[key]

    def has(self, need: str) -> bool:
        """Whether an input named in ``Signal.requires`` can be had."""
        checks = {
            "answer": self.answer is not None,
            "logprobs": self.token_logprobs is not None,
            "samples": self.samples is not None or self.sample_provider is not None,
            "embedder": self.embed_provider is not None,
            "judge": self.p_true_provider is not None,
            "context": bool(self.context),
            "nli": self.nli_provider is not None,
        }
        return checks.get(need, False)

    async def get_samples(self) -> list[str]:
        if self.samples is not None:
            return self.samples
        if self.sample_provider is None:
            raise MissingInput("samples")
        provider = self.sample_provider
        self.samples = await self.once("samples", provider)
        return self.samples

    async def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-normalised embeddings, computed once per distinct text."""
        if self.embed_provider is None:
            raise MissingInput("embedder")
        cache = self._embeddings
        todo = sorted({t for t in texts if t not in cache})
        if todo:
            vecs = await self.embed_provider(todo)
            for text, vec in zip(todo, vecs, strict=True):
                norm = float(np.linalg.norm(vec))
                cache[text] = vec / norm if norm > 0 else vec
        return np.stack([cache[t] for t in texts]) if texts else np.zeros((0, 0))
