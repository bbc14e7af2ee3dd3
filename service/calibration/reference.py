"""The calibration set's input distribution, stored in the artifact for drift monitoring.

``reference`` summarises, for the records the maps never fitted on (test and held-out
splits): the stage-0 confidence replayed through the artifact's own maps (quantile bins),
the stage mix (where the default policy stops), and each raw stage-0 signal (quantile
bins). These are exactly what the server computes for each live decision, so a live
window can be compared with them without labels (``service/monitoring/drift.py``).

The raw signals are there because a fitted map can be flat (a stage-0 map fitted on a few
dozen labels may keep no input, which is a legitimate outcome): its confidence then has
one value whatever the questions, and a confidence histogram cannot see any shift, while
the error rate among answered moves with the question mix. The inputs themselves can.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from service.calibration.records import Record
from service.calibration.simulate import decide, replay
from service.cascade.policy import ConfidenceModel
from service.vocab import N_STAGES, STAGES

DRIFT_SIGNALS = STAGES[0].signals  # every decision has them (the greedy pass always runs)

MAX_BINS = 10
PER_BIN = 10  # at least this many reference points per bin (fewer bins on small sets)


class Bins(BaseModel):
    edges: list[float] = Field(description="inner edges of the quantile bins")
    fractions: list[float] = Field(description="reference share of each bin")


class DriftReference(BaseModel):
    n: int = Field(ge=1, description="records summarised (test + held-out splits)")
    confidence_edges: list[float] = Field(description="inner edges of the stage-0 bins")
    confidence_fractions: list[float] = Field(description="reference share of each bin")
    stage_mix: list[float] | None = Field(
        default=None, description="share of decisions stopping at each stage, default policy")
    signals: dict[str, Bins] = Field(
        default_factory=dict, description="raw stage-0 signals: quantile bins of each")


def bin_edges(values: np.ndarray, max_bins: int = MAX_BINS) -> list[float]:
    """Inner quantile edges (equal reference mass per bin), ties merged."""
    k = int(np.clip(len(values) // PER_BIN, 1, max_bins))
    qs = np.quantile(values, np.linspace(0, 1, k + 1)[1:-1]) if k > 1 else np.array([])
    return [float(q) for q in np.unique(qs)]


def bin_fractions(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    counts = np.bincount(np.searchsorted(edges, values, side="right"),
                         minlength=len(edges) + 1)
    return [float(c) / max(1, len(values)) for c in counts]


def signal_bins(records: Sequence[Record]) -> dict[str, Bins]:
    """Quantile bins of each raw stage-0 signal present in every record."""
    out = {}
    for name in DRIFT_SIGNALS:
        vals = [r.signals.get(name) for r in records]
        if any(v is None for v in vals):
            continue
        x = np.asarray(vals, dtype=float)
        edges = bin_edges(x)
        out[name] = Bins(edges=edges, fractions=bin_fractions(x, edges))
    return out


def build_reference(records: Sequence[Record], model: ConfidenceModel,
                    default_thresholds: tuple[float, float] | None,
                    max_stage: int) -> DriftReference | None:
    """The reference of ``records`` under ``model``; ``default_thresholds`` (answer, abstain)
    of the default target risk give the stage mix (None: no stage mix)."""
    if not records:
        return None
    rp = replay(records, model)
    conf = np.nan_to_num(rp.conf[:, 0], nan=0.0)
    edges = bin_edges(conf)
    mix = None
    if default_thresholds is not None:
        stage = decide(rp, *default_thresholds, max_stage).stage
        mix = (np.bincount(stage, minlength=N_STAGES) / len(stage)).tolist()
    return DriftReference(n=len(records), confidence_edges=edges,
                          confidence_fractions=bin_fractions(conf, edges), stage_mix=mix,
                          signals=signal_bins(records))


def reference_for(model: ConfidenceModel, records: Sequence[Record],
                  max_stage: int) -> DriftReference | None:
    """The reference under the model's default policy (no stage mix when it promises
    nothing at the default target risk)."""
    choice = model.policy(None, max_stage)
    th = ((choice.policy.answer_threshold, choice.policy.abstain_threshold)
          if choice.target_risk is not None else None)
    return build_reference(records, model, th, max_stage)
