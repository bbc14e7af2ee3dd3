"""Decisions between stages: pure data and a pure function.

After stage k the policy compares the confidence so far with two thresholds:
``>= answer`` -> answer now; ``< abstain`` -> hopeless, abstain now; else run the
next stage. At the last stage allowed, anything below ``answer`` abstains.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class Action(enum.StrEnum):
    ANSWER = "answer"
    ESCALATE = "escalate"
    ABSTAIN = "abstain"


@dataclass(frozen=True)
class Policy:
    answer_threshold: float
    abstain_threshold: float
    max_stage: int

    def __post_init__(self) -> None:
        if not 0.0 <= self.abstain_threshold <= self.answer_threshold <= 1.0:
            raise ValueError("need 0 <= abstain_threshold <= answer_threshold <= 1")

    def decide(self, stage: int, confidence: float) -> Action:
        if confidence >= self.answer_threshold:
            return Action.ANSWER
        if stage >= self.max_stage or confidence < self.abstain_threshold:
            return Action.ABSTAIN
        return Action.ESCALATE


class ConfidenceModel(Protocol):
    """Maps the signals seen up to a stage to a confidence, and gives the policy.

    ``UncalibratedModel`` below is the default; a calibration artifact provides a
    calibrated one (``service.calibration.artifact``).
    """

    calibrated: bool
    id: str | None
    delta: float | None

    def confidence(self, stage: int, features: Mapping[str, float]) -> float: ...

    def policy(self, target_risk: float | None, max_stage: int) -> tuple[Policy, float | None]:
        """The policy for a request and the target risk it honours (None if uncalibrated)."""
        ...


STAGE_CONF_KEYS = ("conf_token", "conf_consistency", "conf_semantic", "conf_judge")


@dataclass(frozen=True)
class UncalibratedModel:
    """Mean of the informative per-stage confidences so far; thresholds from settings."""

    answer_threshold: float
    abstain_threshold: float
    calibrated: bool = False
    id: str | None = None
    delta: float | None = None

    def confidence(self, stage: int, features: Mapping[str, float]) -> float:
        vals = [features[k] for k in STAGE_CONF_KEYS[: stage + 1] if k in features]
        return float(sum(vals) / len(vals)) if vals else 0.0

    def policy(self, target_risk: float | None, max_stage: int) -> tuple[Policy, float | None]:
        return Policy(self.answer_threshold, self.abstain_threshold, max_stage), None
