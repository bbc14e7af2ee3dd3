"""The cascade's stages with their signal code attached (what the runner runs).

The registry itself (``STAGES``: names, costs, the signals each adds) is pure data in
``service/vocab.py``; ``default_stages`` attaches the signal implementations to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.vocab import STAGES, StageSpec

if TYPE_CHECKING:
    from service.signals.base import Signal


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
