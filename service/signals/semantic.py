"""Stage 2: semantic clustering of the greedy answer and the samples.

Answers are embedded (sentence-transformers; embedded default all-MiniLM-L6-v2),
grouped by agglomerative clustering (average linkage, cosine distance below
``1 - cluster_similarity``), or by bidirectional entailment when an NLI model is
configured (Kuhn et al. 2023). Math answers are grouped by their final number
(embeddings put "12" and "21" close together, but they mean different things).

Values:
- ``semantic_entropy``: discrete semantic entropy (Farquhar et al. 2024) of the
  samples' cluster distribution, in nats. Higher = less sure.
- ``mean_similarity``: mean pairwise cosine similarity of the samples. Higher = surer.

Uncalibrated confidence: the share of samples in the greedy answer's cluster.
One cluster for all samples = homogeneous = uninformative.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from service.signals.base import SignalContext, SignalResult
from service.signals.consistency import cluster_ids, sampling_uninformative
from service.signals.normalize import normalize_answer


def agglomerative_clusters(emb: np.ndarray, min_similarity: float) -> list[int]:
    """Cluster ids of unit-normalised rows, renumbered by first appearance."""
    n = emb.shape[0]
    if n == 0:
        return []
    if n == 1:
        return [0]
    from sklearn.cluster import AgglomerativeClustering  # on first use: a heavy import

    model = AgglomerativeClustering(
        n_clusters=None,
        metric="cosine",
        linkage="average",
        distance_threshold=1.0 - min_similarity,
    )
    raw = model.fit_predict(emb)
    first: dict[int, int] = {}
    return [first.setdefault(int(c), len(first)) for c in raw]


def discrete_entropy(labels: Sequence[int]) -> float:
    if not labels:
        raise ValueError("no labels")
    counts = np.asarray(list(Counter(labels).values()), dtype=float)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def mean_pairwise_similarity(emb: np.ndarray) -> float:
    n = emb.shape[0]
    if n < 2:
        return 1.0
    sim = emb @ emb.T
    iu = np.triu_indices(n, k=1)
    return float(np.clip(sim[iu], -1.0, 1.0).mean())


def semantic_stats(labels_with_greedy: Sequence[int], emb_samples: np.ndarray) -> dict[str, float]:
    """``labels_with_greedy[0]`` is the greedy answer's cluster, the rest the samples'."""
    g, samples = labels_with_greedy[0], list(labels_with_greedy[1:])
    if not samples:
        raise ValueError("semantic stats need at least one sample")
    return {
        "semantic_entropy": discrete_entropy(samples),
        "mean_similarity": mean_pairwise_similarity(emb_samples),
        "greedy_share": sum(1 for s in samples if s == g) / len(samples),
        "n_semantic_clusters": float(len(set(samples))),
    }


class SemanticSignal:
    name = "semantic"
    requires = ("answer", "samples", "embedder")

    def __init__(self, min_similarity: float = 0.85) -> None:
        self.min_similarity = min_similarity

    async def score(self, ctx: SignalContext) -> SignalResult:
        assert ctx.answer is not None
        samples = await ctx.get_samples()
        texts = [ctx.answer, *samples]
        emb = await ctx.embed(texts)
        if ctx.task == "math":  # same final number = same meaning (docs/signals.md)
            labels = cluster_ids([normalize_answer(t, "math") for t in texts])
        elif ctx.nli_provider is not None:
            from service.signals.nli import entailment_clusters

            labels = await entailment_clusters(texts, ctx.nli_provider)
        else:
            labels = agglomerative_clusters(emb, self.min_similarity)
        stats = semantic_stats(labels, emb[1:])
        values = {
            "semantic_entropy": stats["semantic_entropy"],
            "mean_similarity": stats["mean_similarity"],
        }
        single = sampling_uninformative(stats["n_semantic_clusters"] == 1 and len(samples) >= 2,
                                        stats["greedy_share"])
        note = "single semantic cluster; uninformative" if single else None
        conf = stats["greedy_share"]
        if not math.isfinite(conf):
            conf = 0.0
        return SignalResult(self.name, values, conf, informative=not single, note=note,
                            clusters=[int(c) for c in labels[1:]])
