"""Each claim's own signals: its tokens in the greedy pass, and its support among samples.

- Token signals (free): the greedy tokens that overlap the claim's span give
  ``claim_mean_nll``, ``claim_min_token_prob``, ``claim_token_entropy`` and
  ``claim_n_tokens`` (``service.signals.token.token_stats`` over those tokens only).
- ``support``: the share of the stage-1 samples that state the same claim. A sample is
  split by the same splitter; an enumerated claim (``part`` k) is compared with the
  sample's part k when the sample has one, any other claim with every claim of the
  sample. Two claims are the same when their normalised answers are equal
  (``normalize_answer``: the final number for math, SQuAD-normalised text otherwise) or,
  given an embedder, when their embeddings' cosine similarity reaches the cluster
  similarity (sentences that say the same thing in other words).

Uncalibrated claim confidence: the mean of the span's geometric-mean token probability
and (when samples were drawn) its support, as the answer-level uncalibrated rule averages
its stages' own confidences.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from service.claims.split import Claim
from service.engine.protocol import TokenInfo
from service.signals.normalize import normalize_answer
from service.signals.token import token_stats

Embed = Callable[[list[str]], Awaitable[np.ndarray]]  # unit-normalised rows per text
# A token the text cannot place (a special token, a byte fragment) is searched this far on.
_LOOKAHEAD = 8


@dataclass(frozen=True)
class ClaimSignals:
    mean_nll: float | None
    min_token_prob: float | None
    token_entropy: float | None
    n_tokens: int
    support: float | None = None  # None: no samples were drawn

    def features(self) -> dict[str, float]:
        """The claim map's inputs (missing values left out: the map imputes them)."""
        raw = {"claim_mean_nll": self.mean_nll, "claim_min_token_prob": self.min_token_prob,
               "claim_token_entropy": self.token_entropy,
               "claim_n_tokens": float(self.n_tokens), "support": self.support}
        return {k: float(v) for k, v in raw.items() if v is not None}

    @property
    def uncalibrated(self) -> float:
        token = 0.0 if self.mean_nll is None else math.exp(-self.mean_nll)
        parts = [token] if self.support is None else [token, self.support]
        return float(sum(parts) / len(parts))


def token_offsets(text: str, tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Each token's ``[start, end)`` in ``text``; a token the text does not continue with
    (a special token, a byte fragment) gets an empty range where the text stands."""
    out, pos = [], 0
    for tok in tokens:
        j = text.find(tok, pos, pos + len(tok) + _LOOKAHEAD) if tok else -1
        if j < 0:
            out.append((pos, pos))
            continue
        out.append((j, j + len(tok)))
        pos = j + len(tok)
    return out


def claim_token_signals(claim: Claim, tokens: Sequence[TokenInfo],
                        offsets: Sequence[tuple[int, int]]) -> ClaimSignals:
    """The token statistics of the greedy tokens overlapping the claim's span."""
    mine = [t for t, (s, e) in zip(tokens, offsets, strict=True)
            if s < claim.end and e > claim.start]
    stats = token_stats([t.logprob for t in mine],
                        [list(t.top_logprobs) for t in mine] if mine and all(
                            t.top_logprobs for t in mine) else None)
    return ClaimSignals(stats.mean_nll, stats.min_token_prob, stats.token_entropy,
                        stats.n_tokens)


def _candidates(claim: Claim, sample: Sequence[Claim]) -> list[Claim]:
    if claim.part is not None:
        same_part = [c for c in sample if c.part == claim.part]
        if same_part:
            return same_part
    return list(sample)


async def support(claims: Sequence[Claim], samples: Sequence[Sequence[Claim]], task: str,
                  embed: Embed | None = None, similarity: float = 0.85) -> list[float]:
    """Per claim, the share of samples stating it (module docstring); [] for no claims."""
    if not samples:
        raise ValueError("support needs at least one sample")
    keys = [normalize_answer(c.text, task) for c in claims]
    sample_keys = [{c: normalize_answer(c.text, task) for c in s} for s in samples]
    vec: dict[str, np.ndarray] = {}
    if embed is not None and task != "math":
        texts = sorted({c.text for c in claims} | {c.text for s in samples for c in s})
        vec = dict(zip(texts, await embed(texts), strict=True)) if texts else {}
    out = []
    for claim, key in zip(claims, keys, strict=True):
        hits = 0
        for sample, skeys in zip(samples, sample_keys, strict=True):
            cands = _candidates(claim, sample)
            same = bool(key) and any(skeys[c] == key for c in cands) or (
                bool(vec) and any(float(vec[claim.text] @ vec[c.text]) >= similarity
                                  for c in cands))
            hits += same
        out.append(hits / len(samples))
    return out
