"""Held-out metrics and the HTML report on synthetic records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.calibration.artifact import CalibratedModel
from service.eval.report import evaluate, write_report
from service.labelled import quality
from tests.unit.calib_synth import synthetic_records
from tests.unit.test_calibration import make_spec


def test_metrics_on_known_cases() -> None:
    y = np.array([1, 1, 0, 0], dtype=bool)
    assert quality.auroc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 1.0
    assert quality.auroc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 0.0
    assert quality.auroc(np.ones(3), np.ones(3, bool)) is None
    assert quality.accuracy_at_coverage(np.array([0.9, 0.8, 0.2, 0.1]), y, 0.5) == 1.0
    good = np.array([0.9, 0.8, 0.2, 0.1])
    assert quality.aurc(good, y) == pytest.approx((0 + 0 + 1 / 3 + 0.5) / 4)
    assert quality.ece(np.array([1.0, 1.0, 0.0, 0.0]), y) == 0.0
    assert quality.ece(np.full(4, 0.5), y) == pytest.approx(0.0)
    assert quality.ece(np.full(4, 0.9), y) == pytest.approx(0.4)


def test_evaluate_and_report(tmp_path: Path) -> None:
    recs = synthetic_records(600, 2)
    model = CalibratedModel(make_spec(600, 2))
    s = evaluate(recs, model)
    assert s["n"] == 180 and s["excluded_fitted"] == 420
    assert 0 <= s["ece"] < 0.2 and s["auroc"]["fused"]["auroc"] > 0.7
    assert s["auroc"]["token_entropy"]["auroc"] > 0.6 and 0 < s["single_cluster_rate"] < 0.5
    assert set(s["selective"]["fused"]["accuracy_at_coverage"]) == {"0.25", "0.5", "0.75", "1"}
    pol = s["default_policy"]
    assert sum(pol["stage_mix"].values()) == pytest.approx(1.0)
    # early exit: the cascade spends at most what running every stage costs
    assert 0 < pol["mean_tokens"] <= pol["mean_tokens_all_stages"]
    if pol["stage_mix"]["3"] < 1.0:
        assert pol["mean_tokens"] < pol["mean_tokens_all_stages"]
    page = write_report(s, recs, model, tmp_path)
    assert "AUROC per signal" in page.read_text()
    for png in ("risk_coverage", "roc", "reliability", "stage_mix"):
        assert (tmp_path / f"{png}.png").stat().st_size > 5000
    assert json.loads((tmp_path / "summary.json").read_text())["n"] == 180
