"""candor-client must not drift from the server: its models against the OpenAPI schema."""

from __future__ import annotations

from typing import Any

import pytest
from candor_client import models
from pydantic import BaseModel, create_model

from service.config import Settings
from service.main import create_app
from tests.unit import client_drift
from tests.unit.client_drift import drift


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return create_app(Settings()).openapi()


def without(cls: type[BaseModel], name: str) -> type[BaseModel]:
    """A copy of a client model that lacks one field."""
    assert name in cls.model_fields
    kept: Any = {n: (f.annotation, f) for n, f in cls.model_fields.items() if n != name}
    return create_model(cls.__name__, __base__=models.Model, **kept)


PAIRS = dict(client_drift.PAIRS)


def swap(monkeypatch: pytest.MonkeyPatch, old: type[BaseModel], new: type[BaseModel]) -> None:
    """Check ``new`` in place of the client model ``old``."""
    pairs = {(new if cls is old else cls): server for cls, server in PAIRS.items()}
    monkeypatch.setattr(client_drift, "PAIRS", pairs)


def test_client_models_match_the_server_schema(openapi: dict[str, Any]) -> None:
    problems = drift(openapi)
    assert not problems, "candor-client drifted from the server:\n" + "\n".join(problems)


def test_every_response_and_what_it_nests_is_paired(openapi: dict[str, Any]) -> None:
    paired = set(client_drift.PAIRS.values())
    assert {"AnswerResponse", "ScoreResponse", "FeedbackResponse", "CalibrationResponse",
            "ReloadResponse"} <= paired
    schemas, nested, todo = openapi["components"]["schemas"], set(), ["CalibrationResponse"]
    while todo:  # every schema the calibration response uses, at any depth
        new = client_drift.refs(schemas[todo.pop()]) - nested
        nested |= new
        todo += sorted(new)
    assert {"CalibrationProfile", "PromiseStatus", "PromiseReport", "DriftReport",
            "DriftBins", "ServingSettings", "ThresholdEntry"} <= nested <= paired


def test_drift_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field the server adds, one the client invents, and a changed type all fail."""
    schema = create_app(Settings()).openapi()
    props = schema["components"]["schemas"]["FeedbackResponse"]["properties"]
    props["new_field"] = {"type": "integer"}
    schema["components"]["schemas"]["Usage"]["properties"]["total_tokens"] = {"type": "string"}
    fake_sample = create_model("Sample", __base__=models.Sample, extra_field=(int, 0))
    swap(monkeypatch, models.Sample, fake_sample)
    problems = drift(schema)
    assert any(p.startswith("FeedbackResult.new_field: missing") for p in problems)
    assert any(p.startswith("Usage.total_tokens: client ['integer'], server ['string']")
               for p in problems)
    assert any(p.startswith("Sample.extra_field: not in the server") for p in problems)
    assert len(problems) == 3, problems


@pytest.mark.parametrize(("cls", "name"), [
    (models.Calibration, "message"),  # sent only with several profiles or none
    (models.Calibration, "delta"),  # the one-profile summary at the top level
    (models.CalibrationProfile, "scope"),
    (models.PromiseStatus, "labelled"),
    (models.PromiseReport, "abstention"),
    (models.DriftBins, "edges"),
    (models.ServingSettings, "candor_version"),
    (models.ReloadResult, "unchanged"),
])
def test_a_field_removed_from_a_client_model_fails(
        openapi: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        cls: type[BaseModel], name: str) -> None:
    swap(monkeypatch, cls, without(cls, name))
    assert drift(openapi) == [f"{cls.__name__}.{name}: missing in the client "
                              f"(server: {sorted(drift_type(openapi, cls, name))})"]


def drift_type(openapi: dict[str, Any], cls: type[BaseModel], name: str) -> frozenset[str]:
    server = openapi["components"]["schemas"][PAIRS[cls]]
    return client_drift.fields(server, {})[name]


def test_null_is_lenient_only_where_the_client_defaults_to_none(
        openapi: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """``PromiseStatus.labelled`` may be absent (the client reads None); a required client
    field that adds null, or a client type that differs otherwise, fails."""
    required = create_model("PromiseStatus", __base__=models.PromiseStatus,
                            labelled=(int | None, ...))
    swap(monkeypatch, models.PromiseStatus, required)
    assert drift(openapi) == ["PromiseStatus.labelled: client ['integer', 'null'], "
                              "server ['integer']"]
    narrower = create_model("DriftReport", __base__=models.DriftReport,
                            signals=(dict[str, float], {}))
    swap(monkeypatch, models.DriftReport, narrower)
    assert drift(openapi) == ["DriftReport.signals: client ['object[number]'], server "
                              "['object[DriftBins]']"]


def test_a_nested_server_model_no_client_model_mirrors_fails(
        openapi: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = dict(PAIRS)
    pairs.pop(models.DriftBins)
    monkeypatch.setattr(client_drift, "PAIRS", pairs)
    problems = drift(openapi)
    assert "DriftReport: the server's DriftReport uses DriftBins, which no client model " \
           "mirrors (add it to PAIRS)" in problems
