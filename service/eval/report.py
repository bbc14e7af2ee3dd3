"""``candor eval``'s numbers: every signal's AUROC, the fused confidence's AURC, ECE and
accuracy at coverage, realised vs promised risk, single-cluster rate, cost per stage;
and the HTML report that shows them with the plots from ``plots.py``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.calibration.artifact import CalibratedModel
from service.calibration.build import heldout_metrics, unseen
from service.calibration.records import Record
from service.calibration.simulate import decide, replay
from service.eval.scores import signal_aurocs, signal_scores
from service.labelled import quality
from service.vocab import MAX_STAGE, N_STAGES

COVERAGES = (0.25, 0.5, 0.75, 1.0)


def selective(conf: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    return {
        "aurc": quality.aurc(conf, correct),
        "accuracy_at_coverage": {f"{c:g}": quality.accuracy_at_coverage(conf, correct, c)
                                 for c in COVERAGES},
    }


def cost(records: Sequence[Record]) -> dict[str, Any]:
    out = {}
    for k in range(N_STAGES):
        rows = [r for r in records if r.ran[k]]
        if rows:
            out[str(k)] = {"n": len(rows),
                           "mean_tokens": float(np.mean([r.tokens[k] for r in rows])),
                           "mean_ms": float(np.mean([r.ms[k] for r in rows]))}
    return out


def eval_set(records: Sequence[Record], model: CalibratedModel | None) -> list[Record]:
    """What an artifact may be judged on: the questions it never fitted on (its stored
    held-out split, and new ones); every record when there is no artifact."""
    if model is None:
        return list(records)
    held, dropped = unseen(records, model.spec)
    if not held:
        raise ValueError(f"all {len(records)} questions were used to fit calibration "
                         f"{model.id} (its fit and test splits): evaluate it on its held-out "
                         "questions or on new data")
    return held


def evaluate(records: Sequence[Record], model: CalibratedModel | None) -> dict[str, Any]:
    """Metrics on the questions the artifact never saw (all records without an artifact)."""
    held = eval_set(records, model)
    y = np.array([r.correct for r in held], dtype=bool)
    sampled = [r for r in held if r.ran[1]]
    single = [r for r in sampled if r.signals.get("homogeneous") == 1.0]
    out: dict[str, Any] = {
        "n": len(held), "excluded_fitted": len(records) - len(held),
        "accuracy": float(y.mean()) if len(y) else None,
        "auroc": signal_aurocs(held), "single_cluster_rate": len(single) / len(sampled)
        if sampled else None, "n_sampled": len(sampled),
        "auroc_single_cluster": signal_aurocs(single), "cost": cost(held),
        "selective": {name: selective(*signal_scores(held, name)) for name in
                      ("token_entropy", "consistency") if signal_scores(held, name)[0].size},
    }
    if model is not None:
        rp = replay(held, model)
        fused = rp.final()
        out["ranking"] = ranking(out["auroc"], quality.auroc(fused, y))
        out["auroc"]["fused"] = {"auroc": quality.auroc(fused, y), "n": len(held)}
        out["selective"]["fused"] = selective(fused, y)
        out["ece"] = quality.ece(fused, y)
        out["guarantee"] = heldout_metrics(model, held)["risk"]
        choice = model.policy(None, MAX_STAGE)
        pol, alpha = choice.policy, choice.target_risk
        o = decide(rp, pol.answer_threshold, pol.abstain_threshold, model.decision_stage)
        # tokens the early-exit cascade spends (stages up to where it stopped) vs all stages
        tok = np.array([r.tokens for r in held])  # 0 where a stage did not run
        spent = np.array([row[: st + 1].sum() for row, st in zip(tok, o.stage, strict=True)])
        out["default_policy"] = {
            "alpha": alpha, "threshold": pol.answer_threshold, "coverage": float(o.answered.mean()),
            "realised_risk": o.risk(y),
            "stage_mix": {str(k): float((o.stage == k).mean()) for k in range(N_STAGES)},
            "mean_tokens": float(spent.mean()), "mean_tokens_all_stages": float(tok.sum(1).mean()),
        }
    return out


def ranking(signal_auc: dict[str, dict[str, Any]], fused: float | None,
            tolerance: float = 0.01) -> dict[str, Any]:
    """Does calibration rank at least as well as the best single signal (held out)?"""
    ranked = [(v["auroc"], k) for k, v in signal_auc.items() if v.get("auroc") is not None]
    if not ranked or fused is None:
        return {"fused": fused, "best_signal": None, "best_signal_auroc": None, "kept": None}
    best_auc, best = max(ranked)
    return {"fused": fused, "best_signal": best, "best_signal_auroc": best_auc,
            "kept": fused >= best_auc - tolerance, "tolerance": tolerance}


def _table(rows: list[list[Any]], head: list[str]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{body}</table>"


def write_report(summary: dict[str, Any], records: Sequence[Record],
                 model: CalibratedModel | None, out: Path) -> Path:
    """``summary.json``, the PNG plots and ``report.html`` under ``out``."""
    from service.eval.plots import make_plots

    out.mkdir(parents=True, exist_ok=True)
    held = eval_set(records, model)
    pngs = make_plots(held, model, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    keys = ("ranking", "ece", "guarantee", "default_policy", "single_cluster_rate", "cost")
    extra = {k: summary.get(k) for k in keys}
    au = [[k, v["auroc"], v["n"]] for k, v in summary["auroc"].items()]
    sel = [[k, v["aurc"], *v["accuracy_at_coverage"].values()]
           for k, v in summary["selective"].items()]
    parts = [
        f"<h1>Candor evaluation</h1><p>n={summary['n']} held-out questions, accuracy "
        f"{summary['accuracy']}; artifact: {html.escape(model.id or '') if model else 'none'}</p>",
        "<h2>AUROC per signal</h2>", _table(au, ["signal", "AUROC", "n"]),
        "<h2>Selective prediction</h2>",
        _table(sel, ["confidence", "AURC", *[f"acc@{c:g}" for c in COVERAGES]]),
        f"<h2>Guarantee and calibration</h2><pre>{html.escape(json.dumps(extra, indent=1))}</pre>",
        *[f'<h3>{p.stem}</h3><img src="{p.name}" width="560">' for p in pngs],
    ]
    page = out / "report.html"
    page.write_text("<!doctype html><meta charset=utf-8><title>Candor eval</title><style>"
                    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
                    "</style>" + "\n".join(parts))
    return page
