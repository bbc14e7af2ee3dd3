"""Decisions between stages: pure data and a pure function.

After stage k the policy compares the confidence so far with two thresholds:
``>= answer`` -> answer now; ``< abstain`` -> hopeless, abstain now; else run the
next stage. At the last stage allowed, anything below ``answer`` abstains.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from service.vocab import MAX_STAGE, STAGE_CONF_KEYS, no_promise

if TYPE_CHECKING:
    from service.claims.assess import ClaimCalibration


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


@dataclass(frozen=True)
class PolicyChoice:
    """The policy for one request, the risk it promises, and why none when none applies.

    ``reason`` starts with a machine-readable word (``uncalibrated``, ``unsupported``,
    ``no_guarantee``, ``thresholds``, ``run_all``, ``settings``), then a colon and prose.
    """

    policy: Policy
    target_risk: float | None
    reason: str | None = None


class ScopeCheck(Protocol):
    """A profile's scope test (``service.calibration.scope.ScopeTest``): a conformal
    p-value of a request against the profile's calibration questions."""

    @property
    def level(self) -> float: ...
    @property
    def needs_embedding(self) -> bool: ...

    def text(self, question: str, context: str | None) -> str: ...
    def request_stat(self, text: str, embedding: np.ndarray | None) -> float: ...
    def p_request(self, request_stat: float) -> float: ...
    def p_full(self, request_stat: float, answer: str) -> float: ...


class ConfidenceModel(Protocol):
    """Maps the signals seen up to a stage to a confidence, and gives the policy.

    ``UncalibratedModel`` below is the default; a calibration artifact provides a
    calibrated one (``service.calibration.artifact``).
    """

    @property
    def calibrated(self) -> bool: ...
    @property
    def id(self) -> str | None: ...
    @property
    def delta(self) -> float | None: ...
    @property
    def profile(self) -> str | None: ...
    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks this model covers (empty: any task no other profile claims)."""
        ...
    @property
    def scope(self) -> ScopeCheck | None:
        """The scope test its promise is conditioned on (None: no test, no promise)."""
        ...
    @property
    def fits_homogeneous(self) -> bool:
        """Its maps were fitted on single-cluster (homogeneous) stages too."""
        ...
    @property
    def decision_stage(self) -> int:
        """The last stage with a map of its own (later stages cannot change a decision)."""
        ...
    @property
    def answer_max_tokens(self) -> int | None:
        """The answer ``max_tokens`` its scores were collected with (None: any)."""
        ...

    @property
    def claims(self) -> ClaimCalibration | None:
        """The claim-level calibration (claims mode; None: claims are served uncalibrated)."""
        ...

    def confidence(self, stage: int, features: Mapping[str, float]) -> float: ...

    def policy(self, target_risk: float | None, max_stage: int) -> PolicyChoice:
        """The policy for a request and the target risk it honours (None: no promise)."""
        ...

    def request_mismatch(self, max_tokens: int, system: str | None) -> str | None:
        """Why this request's own settings fall outside the calibration (None: in)."""
        ...


@dataclass(frozen=True)
class UncalibratedModel:
    """Mean of the informative per-stage confidences so far; thresholds from settings."""

    answer_threshold: float
    abstain_threshold: float
    calibrated: bool = False
    id: str | None = None
    delta: float | None = None
    profile: str | None = None
    tasks: tuple[str, ...] = ()
    scope: ScopeCheck | None = None
    fits_homogeneous: bool = False
    decision_stage: int = MAX_STAGE
    answer_max_tokens: int | None = None
    claims: ClaimCalibration | None = None
    reason: str = no_promise("uncalibrated", "no calibration artifact is loaded; the "
                             "confidence is a raw score and no error rate is promised")

    def confidence(self, stage: int, features: Mapping[str, float]) -> float:
        vals = [features[k] for k in STAGE_CONF_KEYS[: stage + 1] if k in features]
        return float(sum(vals) / len(vals)) if vals else 0.0

    def policy(self, target_risk: float | None, max_stage: int) -> PolicyChoice:
        return PolicyChoice(
            Policy(self.answer_threshold, self.abstain_threshold, max_stage), None, self.reason)

    def request_mismatch(self, max_tokens: int, system: str | None) -> str | None:
        return None
