"""The report's plots (matplotlib, Agg): risk-coverage, reliability, ROC per signal, stage mix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from service.calibration.artifact import CalibratedModel  # noqa: E402
from service.calibration.records import Record  # noqa: E402
from service.calibration.simulate import decide, replay  # noqa: E402
from service.eval.scores import signal_scores  # noqa: E402
from service.labelled import quality  # noqa: E402
from service.vocab import DIRECTIONS, MAX_STAGE, N_STAGES  # noqa: E402


def _curves(records: Sequence[Record], model: CalibratedModel | None,
            ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name in DIRECTIONS:
        s, y = signal_scores(records, name)
        if len(s) and 0 < y.sum() < len(y):
            out[name] = (s, y)
    if model is not None and records:
        rp = replay(records, model)
        if 0 < rp.correct.sum() < len(rp.correct):
            out["fused"] = (rp.final(), rp.correct)
    return out


def make_plots(records: Sequence[Record], model: CalibratedModel | None, out: Path) -> list[Path]:
    curves = _curves(records, model)
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (s, y) in curves.items():
        cov, risk = quality.risk_coverage(s, y)
        ax.plot(cov, risk, label=f"{name} (AURC {risk.mean():.3f})", lw=_lw(name))
    ax.set(xlabel="coverage", ylabel="risk (error rate among answered)", title="Risk-coverage")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / "risk_coverage.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (s, y) in curves.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} ({quality.auroc(s, y):.3f})", lw=_lw(name))
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC per signal")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / "roc.png"))

    if "fused" in curves:
        s, y = curves["fused"]
        bins = quality.reliability(s, y)
        fig, ax = plt.subplots(figsize=(5, 4.5))
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.scatter([b[0] for b in bins], [b[1] for b in bins], s=[10 + 4 * b[2] for b in bins])
        ax.plot([b[0] for b in bins], [b[1] for b in bins])
        ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
               title=f"Reliability (ECE {quality.ece(s, y):.3f}; marker size = count)")
        paths.append(_save(fig, out / "reliability.png"))
    if model is not None and records:
        rp = replay(records, model)
        choice = model.policy(None, MAX_STAGE)
        pol, alpha = choice.policy, choice.target_risk
        o = decide(rp, pol.answer_threshold, pol.abstain_threshold, model.decision_stage)
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for k in range(N_STAGES):
            ans, abst = ((o.stage == k) & o.answered).mean(), ((o.stage == k) & ~o.answered).mean()
            ax.bar(k, ans, color="tab:green", label="answer" if k == 0 else None)
            ax.bar(k, abst, bottom=ans, color="tab:red", label="abstain" if k == 0 else None)
        ax.set(xlabel="last stage run", ylabel="fraction of questions",
               title=f"Stage mix at target risk {alpha}")
        ax.legend()
        paths.append(_save(fig, out / "stage_mix.png"))
    return paths


def _lw(name: str) -> float:
    return 2.5 if name == "fused" else 1.0


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
