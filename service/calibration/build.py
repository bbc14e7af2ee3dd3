"""Fit an artifact from labelled records: split, fit maps, test thresholds, check held-out.

The records are shuffled with ``split_seed`` into three disjoint parts: *fit*
(per-stage maps and the early-abstain cut), *test* (Learn-then-Test thresholds;
never seen by the maps, which the guarantee needs) and *held-out* (the realised
risk and ECE/AUROC reported in the artifact). The item keys of every split are
stored, so ``candor eval`` evaluates on exactly what the artifact never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from service.calibration.artifact import FORMAT, VERSION, ArtifactSpec, CalibratedModel, Labels
from service.calibration.claim_fit import fit_claims
from service.calibration.claim_spec import DEFAULT_CLAIM_ALPHA
from service.calibration.features import stage_features, vectorise
from service.calibration.fit import fit_stage_map
from service.calibration.maps import StageMap
from service.calibration.pinning import ServingSettings
from service.calibration.records import Record
from service.calibration.reference import reference_for
from service.calibration.scope import (
    COMPONENTS,
    DEFAULT_LEVEL,
    Component,
    Embed,
    ScopeSpec,
    ScopeTest,
    fit_scope,
    p_values,
    scope_text,
)
from service.calibration.select import choose_inputs
from service.calibration.simulate import Outcome, decide, replay
from service.calibration.thresholds import (
    DEFAULT_ALPHAS,
    alpha_on_fit,
    ltt_table,
    pick_abstain_threshold,
)
from service.claims.split import RuleSplitter
from service.labelled import quality
from service.vocab import MAX_STAGE, N_STAGES, STAGES


def split(records: Sequence[Record], seed: int, holdout: float) -> dict[str, list[Record]]:
    idx = np.random.default_rng(seed).permutation(len(records))
    n_hold = int(round(holdout * len(records)))
    rest = idx[: len(idx) - n_hold]
    n_fit = len(rest) // 2
    parts = {"fit": rest[:n_fit], "test": rest[n_fit:], "heldout": idx[len(idx) - n_hold:]}
    return {k: [records[i] for i in v] for k, v in parts.items()}


def fit_maps(records: Sequence[Record], seed: int = 0, select: bool = True,
             homogeneous: bool = True,
             ) -> tuple[list[StageMap | None], list[dict[str, Any] | None]]:
    """One map per stage, fitted on the records where that stage ran (``homogeneous``;
    else only where it was informative, i.e. not single-cluster), over the inputs
    ``select.choose_inputs`` picks (all, one signal, or the previous stage's map)."""
    maps: list[StageMap | None] = []
    chosen: list[dict[str, Any] | None] = []
    last: list[str] | None = None  # the inputs of the last fitted map
    for k in range(N_STAGES):
        rows = [r for r in records if r.ran[k]
                and (r.informative[k] or (homogeneous and STAGES[k].sampling))]
        names = list(stage_features(k))
        x = np.array([vectorise(r.features(k), names) for r in rows],
                     dtype=float).reshape(len(rows), len(names))
        y = np.array([r.correct for r in rows], dtype=int)
        if not rows:
            maps.append(None)
            chosen.append(None)
            continue
        pick = choose_inputs(x, y, names, last, seed) if select else None
        inputs = names if pick is None else pick.features
        chosen.append(None if pick is None else {"choice": pick.choice,
                                                 "auroc_oof": pick.scores})
        if inputs is None:  # the previous stage's map ranks at least as well: keep it
            maps.append(None)
            continue
        cols = [names.index(f) for f in inputs]
        stage_map = fit_stage_map(x[:, cols], y, inputs, seed)
        maps.append(stage_map)
        if stage_map is not None:
            last = inputs
    return maps, chosen


def feasibility(records: Sequence[Record], alphas: Sequence[float]) -> dict[str, Any]:
    """The base error rate mu and, per alpha, the least abstention any distribution-free
    method must have to reach risk alpha, (mu - alpha) / (1 - alpha) (arXiv 2606.29054)."""
    mu = float(np.mean([not r.correct for r in records])) if records else 0.0
    return {"mu": mu, "n": len(records),
            "min_abstention": {f"{a:g}": max(0.0, (mu - a) / (1 - a)) for a in alphas}}


def fit_scope_on(records: Sequence[Record], embed: Embed | None, level: float, seed: int,
                 components: Sequence[Component] | None, instruction: str | None,
                 ) -> tuple[ScopeSpec | None, str | None]:
    """The scope test fitted on ``records`` (the fit split), or None and why: no question
    texts (a decision log without ``log_text``), or too few questions to ever reject at
    ``level``. Without a scope test a server promises nothing with the artifact."""
    if not records or not all(r.question for r in records):
        return None, ("the questions carry no text: a decision log written with "
                      "CANDOR_LOG_TEXT off")
    if components is None:
        components = COMPONENTS if embed is not None else ("question_length", "answer_length")
    try:
        return fit_scope([scope_text(r.question, None, instruction) for r in records],
                         [r.answer for r in records], embed, level=level, seed=seed,
                         components=components, instruction=instruction), None
    except ValueError as exc:
        return None, str(exc)


def in_scope(records: Sequence[Record], scope: ScopeSpec | None,
             embed: Embed | None) -> list[Record]:
    """The records the scope test keeps (all of them when there is no test)."""
    if scope is None or not records:
        return list(records)
    test = ScopeTest(scope)
    p = p_values(test, [test.text(r.question, None) for r in records],
                 [r.answer for r in records], embed)
    return [r for r, pv in zip(records, p, strict=True) if pv >= scope.level]


def heldout_metrics(model: CalibratedModel, records: Sequence[Record]) -> dict[str, Any]:
    """Realised risk per supported alpha, and the fused confidence's ECE/AUROC, held out
    (``records``: the held-out questions the scope test keeps)."""
    if not records:
        return {"n": 0}
    rp = replay(records, model)
    final = rp.final()
    out: dict[str, Any] = {
        "n": len(records), "accuracy": float(rp.correct.mean()),
        "ece": quality.ece(final, rp.correct), "auroc": quality.auroc(final, rp.correct),
        "aurc": quality.aurc(final, rp.correct), "risk": [],
    }
    for e in model.supported(MAX_STAGE):
        assert e.threshold is not None
        o = decide(rp, e.threshold, min(model.spec.abstain_threshold, e.threshold),
                   model.decision_stage)
        r = o.risk(rp.correct)
        out["risk"].append({"alpha": e.alpha, "realised_risk": r, "answered": int(o.answered.sum()),
                            "coverage": float(o.answered.mean()), "held": r <= e.alpha,
                            "mean_stage": float(o.stage.mean())})
    return out


def default_outcome(model: CalibratedModel, records: Sequence[Record]) -> Outcome:
    """What the whole-answer cascade does with ``records`` at the default target risk: who
    is answered, at which stage (when the default is not certified the server abstains on
    every such request after the greedy pass)."""
    entry = next((e for e in model.supported(MAX_STAGE)
                  if abs(e.alpha - model.spec.default_alpha) < 1e-9), None)
    if entry is None or entry.threshold is None or not records:
        n = len(records)
        return Outcome(np.zeros(n, dtype=bool), np.zeros(n, dtype=int))
    return decide(replay(records, model), entry.threshold,
                  min(model.spec.abstain_threshold, entry.threshold), model.decision_stage)


def build_artifact(records: Sequence[Record], *, dataset: str, settings: ServingSettings,
                   seed: int, delta: float, holdout: float, alphas: Sequence[float] | None = None,
                   default_alpha: float | None = 0.1, labels: Labels = "dataset",
                   profile: str = "default", tasks: Sequence[str] = (),
                   collect: dict[str, Any] | None = None, select: bool = True,
                   homogeneous: str = "fitted", embed: Embed | None = None,
                   scope_level: float = DEFAULT_LEVEL,
                   scope_components: Sequence[Component] | None = None,
                   claim_alpha: float = DEFAULT_CLAIM_ALPHA) -> ArtifactSpec:
    """Split, fit the maps, test thresholds, check on held-out data.

    ``default_alpha`` is an input fixed before fitting: the artifact records whether it
    is supported, never swaps it for one that passed. ``None`` ("auto") chooses it on the
    *fit* split (the smallest alpha Learn-then-Test certifies there), before the test
    split is looked at, so the test split's level-delta statement for it still holds.
    ``labels="self-selected"`` (labels nobody sampled at random) writes maps but no
    guarantee.

    The scope test (``scope.py``) is fitted on the fit split, at ``scope_level`` fixed
    before fitting; the thresholds are tested on the test split's *in-scope* questions
    only, and the held-out figures are those of the in-scope held-out questions, so the
    promise is about the requests the server serves under it.

    Records collected in claims mode (multi-part questions) also give the ``claims``
    section (``claim_fit.py``): the claim map on the fit split, the claim threshold at
    ``claim_alpha`` (fixed before fitting) on the in-scope test split.
    """
    alphas = sorted(set(alphas or DEFAULT_ALPHAS)
                    | ({default_alpha} if default_alpha is not None else set()))
    guarantee = labels != "self-selected"
    parts = split(records, seed, holdout)
    top = max(k for r in records for k in range(N_STAGES) if r.ran[k])
    maps, selection = fit_maps(parts["fit"], seed, select, homogeneous == "fitted")
    if maps[0] is None:
        raise ValueError(f"too few fit examples ({len(parts['fit'])}) for a stage-0 map")
    scope, no_scope = fit_scope_on(parts["fit"], embed, scope_level, seed, scope_components,
                                   settings.math_instruction or None)
    test_in = in_scope(parts["test"], scope, embed)
    held_in = in_scope(parts["heldout"], scope, embed)
    now = datetime.now(UTC)
    spec: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "created": now.isoformat(),
        "id": f"{profile}-{dataset}-{settings.model}-{now:%Y%m%dT%H%M%S}",
        "model": settings.model, "profile": profile, "tasks": list(tasks),
        "dataset": dataset, "n": len(records), "split_seed": seed,
        "splits": {k: len(v) for k, v in parts.items()},
        "split_keys": {k: [r.key for r in v] for k, v in parts.items()},
        "settings": settings.model_dump(), "labels": labels, "guarantee": guarantee,
        "delta": delta, "default_alpha": default_alpha or alphas[-1],
        "default_alpha_rule": "fixed" if default_alpha is not None else "fit-split",
        "abstain_threshold": 0.0, "homogeneous": homogeneous,
        "max_stage": top,
        "maps": [m.to_json() if m else None for m in maps], "selection": selection,
        "thresholds": {str(k): [] for k in range(N_STAGES)}, "collect": collect or {},
        "feasibility": feasibility(records, alphas),
        "scope": scope.model_dump() if scope is not None else None,
    }
    draft = CalibratedModel(ArtifactSpec.model_validate(spec))
    fit_rp = replay(parts["fit"], draft)
    spec["abstain_threshold"] = pick_abstain_threshold(fit_rp)
    if default_alpha is None:  # "auto": learned on the fit split, the test split unseen
        spec["default_alpha"] = alpha_on_fit(fit_rp, alphas, delta, spec["abstain_threshold"],
                                             top)
    if guarantee:
        rp = replay(test_in, draft)
        for k in range(top + 1):
            table = ltt_table(rp, alphas, delta, spec["abstain_threshold"], k, fit=fit_rp)
            spec["thresholds"][str(k)] = [c.__dict__ for c in table]
    ok = {c["alpha"] for c in spec["thresholds"][str(top)] if c["threshold"] is not None}
    spec["default_supported"] = guarantee and spec["default_alpha"] in ok
    model = CalibratedModel(ArtifactSpec.model_validate(spec))
    spec["heldout"] = heldout_metrics(model, held_in)
    spec["heldout"]["scope"] = {
        "level": scope_level if scope is not None else None, "missing": no_scope,
        "test_in_scope": f"{len(test_in)}/{len(parts['test'])}",
        "heldout_in_scope": f"{len(held_in)}/{len(parts['heldout'])}"}
    ref = reference_for(model, parts["test"] + parts["heldout"],  # for drift monitoring
                        min(top, model.decision_stage))
    spec["reference"] = ref.model_dump() if ref is not None else None
    claims = (fit_claims(parts, test_in, held_in, alpha=claim_alpha, delta=delta, seed=seed,
                         min_stage=min(top, 2), splitter=RuleSplitter.name,
                         answered=default_outcome(model, held_in).answered.tolist())
              if guarantee else None)
    spec["claims"] = claims.model_dump() if claims is not None else None
    spec["feasibility"]["reached"] = [
        {"alpha": r["alpha"], "abstention": 1 - r["coverage"],
         "min_abstention": spec["feasibility"]["min_abstention"][f"{r['alpha']:g}"]}
        for r in spec["heldout"].get("risk", [])]
    return ArtifactSpec.model_validate(spec)


def unseen(records: Sequence[Record], spec: ArtifactSpec) -> tuple[list[Record], int]:
    """The records an artifact never fitted on (its held-out ones and new ones), and how
    many were dropped because they sit in its fit or test split."""
    fitted = set(spec.split_keys.get("fit", [])) | set(spec.split_keys.get("test", []))
    keep = [r for r in records if r.key not in fitted]
    return keep, len(records) - len(keep)
