"""``GET /v1/calibration`` and the reload reply are typed end to end: the server's models
hold exactly what the server sends (one profile, several, none; watched promises and
drift), and the client parses all of it into typed fields."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from candor_client import Calibration, ReloadResult
from fastapi.testclient import TestClient
from pydantic import BaseModel

from service import schemas
from service.calibration.artifact import save_artifact
from service.calibration.served import CalibrationResponse
from service.config import Settings
from service.main import create_app
from service.reload import reload_reply
from tests.fakes import FakeEmbedder, FakeEngine
from tests.unit.test_calibration_api import SCRIPTS
from tests.unit.test_profiles import spec

ADMIN = {"Authorization": "Bearer adm"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("calibration_response")
    (d / "two").mkdir()
    save_artifact(spec("math", ["math"], 1), d / "two" / "math.json")
    save_artifact(spec("factual", ["factual"], 2), d / "two" / "factual.json")
    return d


@pytest.fixture(scope="module")
def bodies(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The raw JSON of each case, after audited traffic with labels (so the promises are
    watched and the drift windows are full) and a reload (so a replaced artifact shows)."""
    s = Settings(samples_n=4, calibration=root / "two" / "math.json", audit_rate=1.0,
                 drift_window=4, admin_keys="adm", calibration_dir=root,
                 decision_log=tmp_path_factory.mktemp("log") / "d.sqlite")
    app = create_app(s, engine=FakeEngine(scripts=SCRIPTS), embedder=FakeEmbedder())
    out: dict[str, Any] = {}
    with TestClient(app, raise_server_exceptions=False) as c:
        for i, key in enumerate(list(SCRIPTS)[:8]):
            for task in ("math", "factual"):
                r = c.post("/v1/answer", json={"question": key, "task": task,
                                               "policy": {"target_risk": 0.3}})
                assert r.status_code == 200, r.text
                c.post("/v1/feedback", json={"id": r.json()["id"], "correct": i % 3 > 0})
        time.sleep(0.3)  # the decision log commits labels on its writer thread
        out["one"] = c.get("/v1/calibration").json()
        for source in ("two", "none"):
            r = c.post("/v1/admin/calibration/reload", json={"source": source}, headers=ADMIN)
            assert r.status_code == 200, r.text
            out[f"reload_{source}"] = r.json()
            out[source] = c.get("/v1/calibration").json()
    yield out


def test_the_three_cases_and_what_each_carries(bodies: dict[str, Any]) -> None:
    one, two, none = bodies["one"], bodies["two"], bodies["none"]
    assert one["profile"] == "math" and one["calibrations"][0]["id"] == one["id"]
    assert "message" not in one and "answer_threshold" not in one
    assert two["calibrated"] and two["id"] is None and "several" in two["message"]
    assert not {"profile", "delta", "abstain_threshold", "answer_threshold"} & two.keys()
    assert not none["calibrated"] and none["calibrations"] == [] and "answer_threshold" in none
    watched = {(p["calibration_id"], p["active"]): p for p in two["profiles"]}
    math = watched[("math-1", True)]
    assert math["drift"]["confidence"]["psi"] is not None and "edges" not in \
        math["drift"]["stage_mix"]
    assert {p["target_risk"] for p in math["promises"]} >= {0.3}
    assert any(p["labelled"] for p in math["promises"])
    inactive = [p for p in none["profiles"] if not p["active"]]
    assert inactive and all("labelled" not in p and p["drift"] is None for p in inactive)


@pytest.mark.parametrize("case", ["one", "two", "none"])
def test_the_server_model_holds_exactly_what_is_sent(bodies: dict[str, Any], case: str) -> None:
    body = bodies[case]
    assert CalibrationResponse.model_validate(body).model_dump(mode="json") == body


@pytest.mark.parametrize("case", ["one", "two", "none"])
def test_the_client_types_every_field(bodies: dict[str, Any], case: str) -> None:
    cal = Calibration.model_validate(bodies[case])
    assert untyped(cal) == []
    assert cal.model_dump(mode="json", exclude_unset=True) == bodies[case]
    if case == "one":
        assert cal.delta == cal.calibrations[0].delta and cal.settings is not None
        assert cal.calibrations[0]["supported"] == bodies[case]["supported"]


def test_the_reload_reply_round_trips(bodies: dict[str, Any]) -> None:
    two = ReloadResult.model_validate(bodies["reload_two"])
    assert (two.added, two.unchanged, two.changed) == (["factual"], ["math"], True)
    none = ReloadResult.model_validate(bodies["reload_none"])
    assert none.removed == ["factual", "math"] and none.profiles == {}
    for key in ("reload_two", "reload_none"):
        assert schemas.ReloadResponse.model_validate(bodies[key]).model_dump() == bodies[key]


def untyped(model: BaseModel, at: str = "$") -> list[str]:
    """Every field kept as an extra (untyped) anywhere in a parsed response."""
    out = [f"{at}.{k}" for k in (model.model_extra or {})]
    for name in type(model).model_fields:
        for i, value in enumerate(_items(getattr(model, name))):
            if isinstance(value, BaseModel):
                out += untyped(value, f"{at}.{name}[{i}]")
    return out


def _items(value: object) -> list[object]:
    if isinstance(value, dict):
        return [w for v in value.values() for w in _items(v)]
    if isinstance(value, list):
        return [w for v in value for w in _items(v)]
    return [value]


# -- the reload reply, a pure function of the active sets ------------------------------------
def test_reload_reply_names_every_change() -> None:
    reply = reload_reply({"a": "a-1", "b": "b-1", "c": "c-1"},
                         {"b": "b-2", "c": "c-1", "d": "d-1"}, "x.json,y.json", ("e: why",))
    assert reply == schemas.ReloadResponse(
        reloaded=True, changed=True, source="x.json,y.json",
        profiles={"b": "b-2", "c": "c-1", "d": "d-1"},
        previous={"a": "a-1", "b": "b-1", "c": "c-1"}, added=["d"], removed=["a"],
        replaced=["b"], unchanged=["c"], skipped=["e: why"])


def test_reload_reply_reread_and_nothing() -> None:
    same = reload_reply({"a": "a-1"}, {"a": "a-1"}, "builtin")
    assert same.reloaded and not same.changed and same.unchanged == ["a"]
    nothing = reload_reply({}, {}, "none")
    assert not nothing.reloaded and not nothing.changed and nothing.skipped == []
