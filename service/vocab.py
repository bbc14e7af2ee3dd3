"""The words every layer shares: stages, tasks, decisions, abstain reasons, and why no
promise. The ground floor: this module imports nothing of the project, and every other
module takes these names from here (one source of truth per concept).

The stage registry is pure data: what each stage reads and adds. The signal code that
computes a stage is attached by ``service.cascade.stages.default_stages``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

# -- tasks -----------------------------------------------------------------------------------
Task = Literal["auto", "factual", "math", "open"]
TASKS: tuple[Task, ...] = get_args(Task)

# -- decisions -------------------------------------------------------------------------------
Decision = Literal["answer", "abstain"]
DECISIONS: tuple[Decision, ...] = get_args(Decision)
# Why an answer was withheld (``AnswerResponse.reason``, the ``reason`` metric label).
AbstainReason = Literal["low_confidence", "hopeless", "empty_answer", "deadline",
                        "out_of_scope"]
ABSTAIN_REASONS: tuple[AbstainReason, ...] = get_args(AbstainReason)
# What a request outside every profile's scope gets (``CANDOR_OUT_OF_SCOPE``).
OutOfScope = Literal["abstain", "serve"]

# -- why no promise --------------------------------------------------------------------------
# ``CalibrationRef.reason`` starts with one of these words, then a colon and prose.
NoPromise = Literal["uncalibrated", "unsupported", "no_guarantee", "thresholds", "run_all",
                    "settings", "out_of_scope", "no_scope"]
NO_PROMISE: tuple[NoPromise, ...] = get_args(NoPromise)

# The live promise monitors' verdict on a promise (``GET /v1/calibration``, alerts).
Verdict = Literal["unverified", "holding", "breached"]

# Where a replica's live monitors take their state from: the decision log shared by every
# replica (refreshed periodically) or this process's own decisions and labels.
MonitorSource = Literal["shared_log", "local"]


# A calibrated confidence is capped below 1: a finite sample never justifies certainty, and
# a threshold of 1.0 then answers (or keeps) nothing.
MAX_CONFIDENCE = 0.999


def capped_confidence(p: float) -> float:
    """A calibrated map's output in [0, ``MAX_CONFIDENCE``] (answers and claims alike)."""
    return min(MAX_CONFIDENCE, max(0.0, p))


def no_promise(word: NoPromise, prose: str) -> str:
    """A ``CalibrationRef.reason``: the machine-readable word, then why, for a person."""
    return f"{word}: {prose}"


# -- the stage registry ----------------------------------------------------------------------
@dataclass(frozen=True)
class StageSpec:
    index: int
    name: str
    cost: str
    signals: tuple[str, ...]  # raw signals this stage adds (its calibration map's new inputs)
    conf_key: str  # the feature holding this stage's own (uncalibrated) confidence
    sampling: bool = False  # reads the samples: uninformative when they are homogeneous
    optional: bool = False  # may have nothing to say (no context, no P(True)): then skipped
    engine_pass: bool = True  # one engine call of its own (admission budgets its time)


STAGES: tuple[StageSpec, ...] = (
    StageSpec(0, "token", "free: the greedy pass's own logprobs",
              ("token_entropy", "mean_nll", "min_token_prob", "n_tokens"), "conf_token"),
    StageSpec(1, "consistency", "N samples in one prefix-cached request",
              ("consistency", "n_clusters", "homogeneous", "samples_drawn"), "conf_consistency",
              sampling=True),
    StageSpec(2, "semantic", "embeddings (or NLI) of N+1 answers",
              ("semantic_entropy", "mean_similarity"), "conf_semantic", sampling=True,
              engine_pass=False),
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
    # claims mode (service/claims/signals.py): a claim's own tokens and its sample support
    "claim_mean_nll": -1, "claim_min_token_prob": 1, "claim_token_entropy": -1,
    "claim_n_tokens": -1, "support": 1,
}
