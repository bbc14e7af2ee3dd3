"""Fit an artifact from labelled records: split, fit maps, test thresholds, check held-out.

The records are shuffled with ``split_seed`` into three disjoint parts: *fit*
(per-stage maps and the early-abstain cut), *test* (Learn-then-Test thresholds;
never seen by the maps, which the guarantee needs) and *held-out* (the realised
risk and ECE/AUROC reported in the artifact).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from service.calibration.artifact import FORMAT, VERSION, ArtifactSpec, CalibratedModel
from service.calibration.features import stage_features, vectorise
from service.calibration.fit import StageMap, fit_stage_map
from service.calibration.records import N_STAGES, Record
from service.calibration.simulate import decide, replay
from service.calibration.thresholds import DEFAULT_ALPHAS, ltt_table, pick_abstain_threshold
from service.eval import metrics


def split(records: Sequence[Record], seed: int, holdout: float) -> dict[str, list[Record]]:
    idx = np.random.default_rng(seed).permutation(len(records))
    n_hold = int(round(holdout * len(records)))
    rest = idx[: len(idx) - n_hold]
    n_fit = len(rest) // 2
    parts = {"fit": rest[:n_fit], "test": rest[n_fit:], "heldout": idx[len(idx) - n_hold:]}
    return {k: [records[i] for i in v] for k, v in parts.items()}


def fit_maps(records: Sequence[Record], seed: int = 0) -> list[StageMap | None]:
    """One map per stage, fitted on the records where that stage was informative."""
    maps: list[StageMap | None] = []
    for k in range(N_STAGES):
        rows = [r for r in records if r.ran[k] and r.informative[k]]
        names = list(stage_features(k))
        x = np.array([vectorise(r.features(k), names) for r in rows], dtype=float)
        y = np.array([r.correct for r in rows], dtype=int)
        maps.append(fit_stage_map(x.reshape(len(rows), len(names)), y, names, seed)
                    if rows else None)
    return maps


def heldout_metrics(model: CalibratedModel, records: Sequence[Record]) -> dict[str, Any]:
    """Realised risk per supported alpha, and the fused confidence's ECE/AUROC, held out."""
    if not records:
        return {"n": 0}
    rp = replay(records, model)
    final = rp.final()
    out: dict[str, Any] = {
        "n": len(records), "accuracy": float(rp.correct.mean()),
        "ece": metrics.ece(final, rp.correct), "auroc": metrics.auroc(final, rp.correct),
        "aurc": metrics.aurc(final, rp.correct), "risk": [],
    }
    for e in model.supported(3):
        assert e.threshold is not None
        o = decide(rp, e.threshold, min(model.spec.abstain_threshold, e.threshold), 3)
        r = o.risk(rp.correct)
        out["risk"].append({"alpha": e.alpha, "realised_risk": r, "answered": int(o.answered.sum()),
                            "coverage": float(o.answered.mean()), "held": r <= e.alpha,
                            "mean_stage": float(o.stage.mean())})
    return out


def build_artifact(records: Sequence[Record], *, dataset: str, model_name: str, seed: int,
                   delta: float, holdout: float, alphas: Sequence[float] | None = None,
                   default_alpha: float = 0.1, collect: dict[str, Any] | None = None,
                   ) -> ArtifactSpec:
    parts = split(records, seed, holdout)
    top = max(k for r in records for k in range(N_STAGES) if r.ran[k])
    maps = fit_maps(parts["fit"], seed)
    if maps[0] is None:
        raise ValueError(f"too few fit examples ({len(parts['fit'])}) for a stage-0 map")
    spec: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "created": datetime.now(UTC).isoformat(),
        "id": f"{dataset}-{model_name}-{datetime.now(UTC):%Y%m%dT%H%M%S}",
        "model": model_name, "dataset": dataset, "n": len(records), "split_seed": seed,
        "splits": {k: len(v) for k, v in parts.items()}, "delta": delta,
        "default_alpha": default_alpha, "abstain_threshold": 0.0,
        "max_stage": top,
        "maps": [m.to_json() if m else None for m in maps],
        "thresholds": {str(k): [] for k in range(N_STAGES)}, "collect": collect or {},
    }
    draft = CalibratedModel(ArtifactSpec.model_validate(spec))
    fit_rp = replay(parts["fit"], draft)
    spec["abstain_threshold"] = pick_abstain_threshold(fit_rp)
    rp = replay(parts["test"], draft)
    for k in range(top + 1):
        table = ltt_table(rp, alphas or DEFAULT_ALPHAS, delta, spec["abstain_threshold"], k,
                          fit=fit_rp)
        spec["thresholds"][str(k)] = [c.__dict__ for c in table]
    ok = sorted(c["alpha"] for c in spec["thresholds"][str(top)] if c["threshold"] is not None)
    # default: the requested alpha if supported, else the next supported one above it
    spec["default_alpha"] = next((a for a in ok if a >= default_alpha - 1e-12), default_alpha)
    model = CalibratedModel(ArtifactSpec.model_validate(spec))
    spec["heldout"] = heldout_metrics(model, parts["heldout"])
    return ArtifactSpec.model_validate(spec)
