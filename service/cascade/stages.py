"""The ordered stages of the cascade, cheapest first, each with its signals and cost."""

from __future__ import annotations

from dataclasses import dataclass

from service.signals.base import Signal
from service.signals.consistency import ConsistencySignal
from service.signals.judge import JudgeSignal
from service.signals.semantic import SemanticSignal
from service.signals.token import TokenSignal


@dataclass(frozen=True)
class Stage:
    index: int
    name: str
    cost: str
    signal: Signal


def default_stages(cluster_similarity: float = 0.85) -> tuple[Stage, ...]:
    return (
        Stage(0, "token", "free: the greedy pass's own logprobs", TokenSignal()),
        Stage(1, "consistency", "N samples in one prefix-cached request", ConsistencySignal()),
        Stage(2, "semantic", "embeddings (or NLI) of N+1 answers",
              SemanticSignal(cluster_similarity)),
        Stage(3, "judge", "one extra 1-token pass; NLI/embedding of the context", JudgeSignal()),
    )


STAGE_NAMES = tuple(s.name for s in default_stages())
