"""Stage 0: free signals from the greedy pass's token log-probabilities.

- ``token_entropy``: mean over tokens of the entropy (nats) of the top-k
  distribution renormalised to sum to 1. Higher = less sure.
- ``mean_nll``: mean negative log-likelihood of the chosen tokens (nats). Higher = less sure.
- ``mean_logprob``: ``-mean_nll`` (as in docs/api.md).
- ``min_token_prob``: probability of the least likely chosen token. Higher = surer.
- ``n_tokens``: answer length in tokens.

Uncalibrated confidence: ``exp(-mean_nll)``, the geometric-mean token probability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.errors import BadRequest
from service.signals.base import SignalContext, SignalResult, check_finite


@dataclass(frozen=True)
class TokenStats:
    n_tokens: int
    token_entropy: float | None
    mean_nll: float | None
    min_token_prob: float | None

    @property
    def mean_logprob(self) -> float | None:
        return None if self.mean_nll is None else -self.mean_nll

    @property
    def confidence(self) -> float:
        return 0.0 if self.mean_nll is None else math.exp(-self.mean_nll)


def topk_entropy(top_logprobs: Sequence[float]) -> float:
    """Entropy (nats) of the top-k distribution renormalised to 1."""
    lp = np.asarray(top_logprobs, dtype=float)
    if lp.size == 0:
        raise ValueError("empty top-k")
    lp = lp - lp.max()
    p = np.exp(lp)
    p /= p.sum()
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def token_stats(
    token_logprobs: Sequence[float], top_logprobs: Sequence[Sequence[float]] | None = None
) -> TokenStats:
    """Stage-0 statistics. Rejects NaN/inf (``BadRequest``); an empty answer has no statistics."""
    check_finite(token_logprobs, "token_logprobs")
    if any(lp > 1e-6 for lp in token_logprobs):
        raise BadRequest("token_logprobs must be <= 0", param="token_logprobs")
    n = len(token_logprobs)
    if n == 0:
        return TokenStats(0, None, None, None)
    entropy = None
    if top_logprobs is not None:
        if len(top_logprobs) != n:
                raise BadRequest(
                f"top_logprobs has {len(top_logprobs)} positions, token_logprobs has {n}",
                param="top_logprobs",
            )
        for row in top_logprobs:
            check_finite(row, "top_logprobs")
        rows = [row for row in top_logprobs if len(row) > 0]
        entropy = float(np.mean([topk_entropy(r) for r in rows])) if rows else None
    lps = np.asarray(token_logprobs, dtype=float)
    return TokenStats(
        n_tokens=n,
        token_entropy=entropy,
        mean_nll=float(-lps.mean()),
        min_token_prob=float(np.exp(lps.min())),
    )


class TokenSignal:
    name = "token"
    requires = ("answer", "logprobs")

    async def score(self, ctx: SignalContext) -> SignalResult:
        assert ctx.token_logprobs is not None
        stats = token_stats(ctx.token_logprobs, ctx.top_logprobs)
        values = {
            "token_entropy": stats.token_entropy,
            "mean_nll": stats.mean_nll,
            "mean_logprob": stats.mean_logprob,
            "min_token_prob": stats.min_token_prob,
            "n_tokens": stats.n_tokens,
        }
        if stats.n_tokens == 0:
            return SignalResult(self.name, values, 0.0, informative=True, note="empty answer")
        return SignalResult(self.name, values, stats.confidence)
