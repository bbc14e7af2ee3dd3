"""The decision log's writer never dies silently: failures are counted, rows dropped are
exported, /readyz says degraded, and the writer recovers when the store does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from service import schemas
from service.decisions.log import DecisionLog
from service.errors import EngineUnavailable
from service.metrics import Metrics


def _resp(rid: str) -> schemas.AnswerResponse:
    return schemas.AnswerResponse.model_validate({
        "id": rid, "model": "m", "answer": "a", "abstained": False, "decision": "answer",
        "confidence": 0.5, "calibrated": False, "stage_reached": 0, "signals": {},
        "stages": [], "calibration": {"calibrated": False}, "scope": {"tested": False},
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def _value(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


async def test_failed_writes_are_counted_and_the_writer_recovers(tmp_path: Path,
                                                                 monkeypatch) -> None:
    import service.decisions.log as dl

    monkeypatch.setattr(dl, "_RETRY_S", 0.01)
    metrics = Metrics()
    dlog = DecisionLog(tmp_path / "d.sqlite", metrics=metrics)
    real_write = dlog._store.write

    def broken(rows, labels):
        raise sqlite3.OperationalError("disk I/O error")

    dlog._store.write = broken  # type: ignore[method-assign]
    dlog.record(_resp("ans_1"), schemas.AnswerRequest(question="q"), "/v1/answer")
    with pytest.raises(EngineUnavailable, match="cannot store the label"):
        await dlog.feedback("ans_1", True)
    assert not dlog.healthy and "disk I/O error" in (dlog.last_error or "")
    assert _value(metrics, "candor_decision_log_errors_total") >= 1
    assert _value(metrics, "candor_decision_log_dropped_total") == 1  # the decision row
    assert dlog._thread.is_alive()

    dlog._store.write = real_write  # type: ignore[method-assign]
    dlog.record(_resp("ans_2"), schemas.AnswerRequest(question="q"), "/v1/answer")
    labelled = await dlog.feedback("ans_2", True)
    assert labelled is not None and labelled.audit is False
    assert dlog.healthy
    dlog.close()


def test_readyz_degraded_while_the_log_fails(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from service.config import Settings
    from service.main import create_app
    from tests.fakes import FakeEmbedder, FakeEngine

    app = create_app(Settings(decision_log=tmp_path / "d.sqlite", engine_watchdog_s=0),
                     engine=FakeEngine(), embedder=FakeEmbedder())
    with TestClient(app) as c:
        assert c.get("/readyz").json()["status"] == "ready"
        dlog = app.state.candor.decision_log
        dlog.last_error = "OperationalError: connection refused"
        body = c.get("/readyz").json()
        assert body["status"] == "degraded" and "refused" in body["decision_log"]
