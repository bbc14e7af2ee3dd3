"""candor-client must not drift from the server: its models against the OpenAPI schema."""

from __future__ import annotations

from candor_client import models
from pydantic import create_model

from service.config import Settings
from service.main import create_app
from tests.unit import client_drift
from tests.unit.client_drift import drift


def test_client_models_match_the_server_schema() -> None:
    problems = drift(create_app(Settings()).openapi())
    assert not problems, "candor-client drifted from the server:\n" + "\n".join(problems)


def test_drift_is_detected(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A field the server adds, one the client invents, and a changed type all fail."""
    schema = create_app(Settings()).openapi()
    props = schema["components"]["schemas"]["FeedbackResponse"]["properties"]
    props["new_field"] = {"type": "integer"}
    schema["components"]["schemas"]["Usage"]["properties"]["total_tokens"] = {"type": "string"}
    fake_sample = create_model("Sample", __base__=models.Sample, extra_field=(int, 0))
    pairs = {**client_drift.PAIRS, fake_sample: "Sample"}
    pairs.pop(models.Sample)
    monkeypatch.setattr(client_drift, "PAIRS", pairs)
    problems = drift(schema)
    assert any(p.startswith("FeedbackResult.new_field: missing") for p in problems)
    assert any(p.startswith("Usage.total_tokens: client ['integer'], server ['string']")
               for p in problems)
    assert any(p.startswith("Sample.extra_field: not in the server") for p in problems)
    assert len(problems) == 3, problems
