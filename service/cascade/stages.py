"""The one stage registry: the cascade's stages, cheapest first, and what each reads.

``STAGES`` is pure data (no signal code is imported here), so calibration, metrics,
schemas and settings take the stage count, names and per-stage signals from it;
``default_stages`` attaches the signal implementations for the runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.signals.base import Signal


@dataclass(frozen=True)
class StageSpec:
    index: int
    name: str
    cost: str
    signals: tuple[str, ...]  # raw signals this stage adds (its calibration map's new inputs)
    conf_key: str  # the feature holding this stage's own (uncalibrated) confidence
    sampling: bool = False  # reads the samples: uninformative when they are homogeneous
    optional: bool = False  # may have nothing to say (no context, no P(True)): then skipped


STAGES: tuple[StageSpec, ...] = (
    StageSpec(0, "token", "free: the greedy pass's own logprobs",
              ("token_entropy", "mean_nll", "min_token_prob", "n_tokens"), "conf_token"),
    StageSpec(1, "consistency", "N samples in one prefix-cached request",
              ("consistency", "n_clusters", "homogeneous", "samples_drawn"), "conf_consistency",
              sampling=True),
    StageSpec(2, "semantic", "embeddings (or NLI) of N+1 answers",
              ("semantic_entropy", "mean_similarity"), "conf_semantic", sampling=True),
    StageSpec(3, "judge", "one extra 1-token pass; NLI/embedding of the context",
              ("p_true", "context_support"), "conf_judge", optional=True),
)
N_STAGES = len(STAGES)
MAX_STAGE = N_STAGES - 1
STAGE_NAMES = tuple(s.name for s in STAGES)
STAGE_KEYS = tuple(str(s.index) for s in STAGES)  # "0".."3": artifact tables, metric labels
STAGE_CONF_KEYS = tuple(s.conf_key for s in STAGES)
# Raw signal -> direction (+1: higher = more confident), for signals whose direction is
# known before any data (docs/signals.md); used to rank by a single signal.
DIRECTIONS: dict[str, int] = {
    "token_entropy": -1, "mean_nll": -1, "min_token_prob": 1, "n_tokens": -1, "consistency": 1,
    "n_clusters": -1, "semantic_entropy": -1, "mean_similarity": 1, "p_true": 1,
    "context_support": 1,
}


@dataclass(frozen=True)
class Stage:
    """A registry entry with its signal implementation attached (what the runner runs)."""

    spec: StageSpec
    signal: Signal

    @property
    def index(self) -> int:
        return self.spec.index

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def cost(self) -> str:
        return self.spec.cost


def default_stages(cluster_similarity: float = 0.85) -> tuple[Stage, ...]:
    from service.signals.consistency import ConsistencySignal
    from service.signals.judge import JudgeSignal
    from service.signals.semantic import SemanticSignal
    from service.signals.token import TokenSignal

    impls: tuple[Signal, ...] = (TokenSignal(), ConsistencySignal(),
                                 SemanticSignal(cluster_similarity), JudgeSignal())
    return tuple(Stage(spec, sig) for spec, sig in zip(STAGES, impls, strict=True))
