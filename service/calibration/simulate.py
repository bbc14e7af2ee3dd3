"""Replay the server's cascade offline, exactly as ``cascade/runner.py`` runs it.

For each record the running confidence after every stage is computed once (it
does not depend on thresholds): a stage that was skipped leaves it unchanged and
is not decided on; an uninformative stage (homogeneous samples) keeps the previous
confidence but is decided on, unless the model's maps were fitted on such stages too
(``fits_homogeneous``); an informative one asks the confidence model. Then
any (answer, abstain) threshold pair is replayed with ``Policy.decide`` semantics,
vectorised over records, so the threshold search tests the policy the server runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.calibration.records import Record
from service.cascade.policy import ConfidenceModel
from service.vocab import N_STAGES, STAGES


@dataclass(frozen=True)
class Replay:
    """Per-record running confidences (NaN where a stage did not run) and labels."""

    conf: np.ndarray  # (n, N_STAGES)
    ran: np.ndarray  # (n, N_STAGES) bool
    empty: np.ndarray  # (n,) bool: empty greedy answer -> abstain at stage 0
    correct: np.ndarray  # (n,) bool

    def final(self, max_stage: int = N_STAGES - 1) -> np.ndarray:
        """Confidence after every stage up to ``max_stage`` ran (no early exit)."""
        c = self.conf[:, : max_stage + 1]
        out = np.zeros(len(c))
        for k in range(c.shape[1]):
            out = np.where(np.isnan(c[:, k]), out, c[:, k])
        return out


def replay(records: Sequence[Record], model: ConfidenceModel) -> Replay:
    n = len(records)
    fits_homogeneous = model.fits_homogeneous
    conf = np.full((n, N_STAGES), np.nan)
    for i, r in enumerate(records):
        c = 0.0
        for k in range(N_STAGES):
            if not r.ran[k]:
                continue
            if r.informative[k] or (fits_homogeneous and STAGES[k].sampling):
                c = float(model.confidence(k, r.features(k)))
            conf[i, k] = c
    return Replay(conf, ~np.isnan(conf), np.array([r.empty for r in records], dtype=bool),
                  np.array([r.correct for r in records], dtype=bool))


@dataclass(frozen=True)
class Outcome:
    answered: np.ndarray  # (n,) bool
    stage: np.ndarray  # (n,) int: the last stage run

    def risk(self, correct: np.ndarray) -> float:
        """Error rate among answered questions (0 when none is answered)."""
        k = int(self.answered.sum())
        return float((~correct[self.answered]).sum() / k) if k else 0.0


def decide(rp: Replay, answer_t: float, abstain_t: float, max_stage: int) -> Outcome:
    """Which records the policy (answer_t, abstain_t, max_stage) answers, and where it stops."""
    n = len(rp.correct)
    done = np.zeros(n, dtype=bool)
    answered = np.zeros(n, dtype=bool)
    stage = np.zeros(n, dtype=int)
    last = np.zeros(n)
    for k in range(max_stage + 1):
        live = ~done & rp.ran[:, k]
        c = np.where(live, rp.conf[:, k], last)
        last = np.where(live, c, last)
        stage = np.where(live, k, stage)
        if k == 0:
            empty = live & rp.empty
            done |= empty
            live &= ~rp.empty
        ans = live & (c >= answer_t)
        stop = live & ~ans & ((k >= max_stage) | (c < abstain_t))
        answered |= ans
        done |= ans | stop
    left = ~done  # every remaining stage was skipped: decide on the last confidence
    answered |= left & (last >= answer_t)
    return Outcome(answered, stage)
