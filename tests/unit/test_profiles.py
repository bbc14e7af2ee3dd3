"""Calibration profiles on the fake engine: two artifacts at once, routing by task and by
name, a task no profile covers, bad names, the shipped (lenient) profiles and reloads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.calibration import profiles as profiles_mod
from service.calibration.artifact import ArtifactSpec, save_artifact
from service.config import Settings
from service.errors import CalibrationError
from service.main import create_app
from service.state import CandorState
from tests.fakes import FakeEmbedder, FakeEngine
from tests.unit.test_calibration import make_spec
from tests.unit.test_calibration_api import SCRIPTS


def spec(profile: str, tasks: list[str], seed: int) -> ArtifactSpec:
    s = make_spec(600, seed=seed)
    return s.model_copy(update={"profile": profile, "tasks": tasks, "id": f"{profile}-{seed}"})


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("profiles")
    save_artifact(spec("math", ["math"], 1), d / "math.json")
    save_artifact(spec("factual", ["factual"], 2), d / "factual.json")
    return d


def client(calibration: object, **kw: object) -> TestClient:
    s = Settings(**{"samples_n": 4, "calibration": calibration, **kw})  # type: ignore[arg-type]
    app = create_app(s, engine=FakeEngine(scripts=SCRIPTS), embedder=FakeEmbedder())
    return TestClient(app, raise_server_exceptions=False, client=("127.0.0.1", 50000))


@pytest.fixture
def two(profile_dir: Path) -> Iterator[TestClient]:
    with client(profile_dir) as c:
        yield c


def ask(c: TestClient, **body: object) -> dict:
    r = c.post("/v1/answer", json={"question": "k01", **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_requests_go_to_the_profile_of_their_task(two: TestClient) -> None:
    math = ask(two, task="math", policy={"target_risk": 0.3})
    fact = ask(two, task="factual")
    assert (math["calibration"]["profile"], math["calibration"]["id"]) == ("math", "math-1")
    assert (fact["calibration"]["profile"], fact["calibration"]["id"]) == ("factual", "factual-2")
    assert math["calibrated"] and math["calibration"]["target_risk"] is not None
    # task auto: the scope tests choose (tests/unit/test_scope.py); both accept this one
    auto = ask(two, question="What is 3 + 4?")
    assert set(auto["scope"]["candidates"]) == {"math", "factual"} and auto["scope"]["in_scope"]
    assert auto["calibration"]["profile"] == auto["scope"]["profile"]


def test_a_named_profile_wins_over_the_task(two: TestClient) -> None:
    b = ask(two, task="math", policy={"profile": "factual"})
    assert b["calibration"]["profile"] == "factual"
    s = two.post("/v1/score", json={"question": "k01", "answer": "1", "task": "math",
                                    "profile": "factual", "samples": ["1", "1"]}).json()
    assert s["calibrated"] and s["profile"] == "factual"


def test_a_task_no_profile_covers_is_answered_uncalibrated_and_says_so(two: TestClient) -> None:
    b = ask(two, task="open")
    assert b["calibrated"] is False and b["calibration"]["target_risk"] is None
    assert b["calibration"]["profile"] is None
    assert "no calibration profile covers task 'open'" in b["calibration"]["reason"]


@pytest.mark.parametrize("name", ["nope", ""])
def test_a_bad_profile_name_is_a_clear_400(two: TestClient, name: str) -> None:
    r = two.post("/v1/answer", json={"question": "k01", "policy": {"profile": name}})
    assert r.status_code in (400, 422)
    err = r.json()["error"]
    assert "profile" in err["param"]
    if name:
        assert r.status_code == 400 and "math" in err["message"] and "factual" in err["message"]


def test_calibration_lists_every_profile_and_metrics_carry_them(two: TestClient) -> None:
    body = two.get("/v1/calibration").json()
    assert body["calibrated"] is True
    assert {c["profile"]: c["tasks"] for c in body["calibrations"]} == {
        "factual": ["factual"], "math": ["math"]}
    assert all("probability" in c["promise"] for c in body["calibrations"])
    assert {p["profile"] for p in body["profiles"]} == {"math", "factual"}
    metrics = two.get("/metrics").text
    assert 'candor_calibration_info{id="math-1",profile="math"' in metrics
    assert 'candor_calibration_info{id="factual-2",profile="factual"' in metrics


def test_two_profiles_claiming_one_task_are_refused(tmp_path: Path) -> None:
    save_artifact(spec("a", ["math"], 1), tmp_path / "a.json")
    save_artifact(spec("b", ["math", "factual"], 2), tmp_path / "b.json")
    with pytest.raises(CalibrationError, match="task 'math' is covered by two profiles"):
        CandorState.build(Settings(samples_n=4, calibration=tmp_path))


def test_paths_are_strict_and_the_shipped_profiles_lenient(
        tmp_path: Path, profile_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Served with other signal settings (samples_n=6): a named artifact stops startup,
    a shipped one is skipped, logged and reported."""
    with pytest.raises(CalibrationError, match="samples_n: calibrated 4, serving 6"):
        CandorState.build(Settings(samples_n=6, calibration=profile_dir))
    monkeypatch.setattr(profiles_mod, "BUILTIN_DIR", profile_dir)
    state = CandorState.build(Settings(samples_n=6, calibration="builtin"))
    assert not state.profiles.models and len(state.profiles.skipped) == 2
    with client("builtin", samples_n=6) as c:
        body = c.get("/v1/calibration").json()
        assert body["calibrated"] is False and "samples_n" in body["skipped"][0]
    with client("builtin") as c:  # the settings fit: served
        assert {p["profile"] for p in c.get("/v1/calibration").json()["calibrations"]} == {
            "math", "factual"}


def test_mixed_sources_are_refused() -> None:
    with pytest.raises(CalibrationError, match="not a mix"):
        CandorState.build(Settings(calibration="builtin,/tmp/x.json"))


def test_a_reload_serves_exactly_the_profiles_it_names(profile_dir: Path,
                                                       tmp_path: Path) -> None:
    """One file names one profile: the others go (nothing is merged); naming both brings
    the other back. (Admin access and paths: tests/unit/test_admin.py.)"""
    save_artifact(spec("math", ["math"], 3), tmp_path / "math2.json")
    save_artifact(spec("factual", ["factual"], 2), tmp_path / "factual.json")
    with client(profile_dir, admin_keys="adm", calibration_dir=tmp_path) as c:
        c.headers["Authorization"] = "Bearer adm"
        r = c.post("/v1/admin/calibration/reload", json={"source": "math2.json"})
        assert r.status_code == 200, r.text
        assert r.json()["profiles"] == {"math": "math-3"}
        assert (r.json()["replaced"], r.json()["removed"]) == (["math"], ["factual"])
        assert ask(c, task="math")["calibration"]["id"] == "math-3"
        assert ask(c, task="factual")["calibrated"] is False
        r = c.post("/v1/admin/calibration/reload", json={"source": "math2.json,factual.json"})
        assert r.json()["profiles"] == {"math": "math-3", "factual": "factual-2"}
        assert (r.json()["added"], r.json()["unchanged"]) == (["factual"], ["math"])
        assert ask(c, task="factual")["calibration"]["id"] == "factual-2"
