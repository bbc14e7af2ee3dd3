"""Stage 1: self-consistency of N sampled answers with the greedy answer.

Values:
- ``consistency``: fraction of samples whose normalised answer equals the greedy one
  (Wang et al. 2023). Higher = surer.
- ``n_clusters``: distinct normalised answers among the samples.
- ``homogeneous``: all samples fall in one cluster (N >= 2). Then sampling carries no
  information ("response homogenization", arXiv 2603.24124) and the stage is marked
  uninformative: the cascade falls back on the stage-0 confidence (which single-cluster
  cases count: ``HOMOGENEITY_RULE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.signals.base import SignalContext, SignalResult
from service.signals.normalize import normalize_answer

# When do homogeneous samples carry no information? "any": whenever all samples fall in
# one cluster; "with_greedy": only when that cluster holds the greedy answer (a single
# cluster that excludes it says the greedy answer is likely wrong). Chosen from data:
# docs/signals.md, benchmarks/homogeneity_rule.py.
HOMOGENEITY_RULE = "with_greedy"


def sampling_uninformative(single_cluster: bool, greedy_share: float,
                           rule: str = HOMOGENEITY_RULE) -> bool:
    """The one homogeneity rule, for stage 1 (exact clusters) and stage 2 (semantic)."""
    return single_cluster and (rule == "any" or greedy_share > 0)


def cluster_ids(keys: Sequence[str]) -> list[int]:
    """Cluster id per item by exact key, numbered by first appearance."""
    ids: dict[str, int] = {}
    return [ids.setdefault(k, len(ids)) for k in keys]


@dataclass(frozen=True)
class ConsistencyStats:
    consistency: float
    n_clusters: int
    homogeneous: bool
    normalized: list[str]
    clusters: list[int]


def consistency_stats(greedy: str, samples: Sequence[str], task: str) -> ConsistencyStats:
    if not samples:
        raise ValueError("consistency needs at least one sample")
    g = normalize_answer(greedy, task)
    norm = [normalize_answer(s, task) for s in samples]
    clusters = cluster_ids(norm)
    n_clusters = len(set(clusters))
    agree = sum(1 for s in norm if s == g) / len(norm)
    return ConsistencyStats(
        consistency=agree,
        n_clusters=n_clusters,
        homogeneous=len(norm) >= 2 and n_clusters == 1,
        normalized=norm,
        clusters=clusters,
    )


class ConsistencySignal:
    name = "consistency"
    requires = ("answer", "samples")

    async def score(self, ctx: SignalContext) -> SignalResult:
        assert ctx.answer is not None
        samples = await ctx.get_samples()
        stats = consistency_stats(ctx.answer, samples, ctx.task)
        values = {
            "consistency": stats.consistency,
            "n_clusters": stats.n_clusters,
            "homogeneous": stats.homogeneous,
            "samples_drawn": len(samples),
        }
        if sampling_uninformative(stats.homogeneous, stats.consistency):
            return SignalResult(
                self.name, values, stats.consistency, informative=False,
                note="homogeneous: all samples in one cluster; sampling is uninformative",
                clusters=stats.clusters,
            )
        return SignalResult(self.name, values, stats.consistency, clusters=stats.clusters)
