"""Routing by scope on the fake engine: two profiles whose calibration questions differ
(short arithmetic-like questions vs long completions; length-only scope tests, since the
fake embedder's vectors mean nothing), requests no profile accepts, answers far longer
than the calibration answers, and what out-of-scope traffic gets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.calibration.artifact import save_artifact
from service.calibration.build import build_artifact
from service.config import Settings
from service.main import create_app
from tests.fakes import FakeEmbedder, FakeEngine, Script
from tests.unit.calib_synth import synthetic_records
from tests.unit.test_calibration import SERVING

SHORT = "What is 3 + 4?"
LONG = ("Complete the sentence with a short answer: the river that flows through the old "
        "capital of the kingdom is ...")
PARAGRAPH = " ".join(["The answer depends on many things that I will now explain."] * 8)
SCRIPTS = {"para:": Script(greedy=PARAGRAPH, logprob=-0.01)}


def profile(tmp: Path, name: str, seed: int, q: tuple[int, int], a: tuple[int, int]) -> None:
    records = synthetic_records(600, seed, question_chars=q, answer_chars=a)
    spec = build_artifact(records, dataset="synthetic", settings=SERVING, seed=seed, delta=0.1,
                          holdout=0.3, profile=name, tasks=[name], default_alpha=0.3)
    save_artifact(spec.model_copy(update={"id": f"{name}-{seed}"}), tmp / f"{name}.json")


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("scoped")
    profile(d, "math", 1, (8, 40), (2, 40))
    profile(d, "factual", 2, (70, 160), (2, 40))
    return d


def client(calibration: Path, **kw: object) -> TestClient:
    s = Settings(**{"samples_n": 4, "calibration": calibration, **kw})  # type: ignore[arg-type]
    app = create_app(s, engine=FakeEngine(scripts=SCRIPTS), embedder=FakeEmbedder())
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def served(profiles: Path) -> Iterator[TestClient]:
    with client(profiles) as c:
        yield c


def ask(c: TestClient, **body: object) -> dict:
    r = c.post("/v1/answer", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_auto_goes_to_the_profile_whose_scope_accepts_the_request(served: TestClient) -> None:
    short, long = ask(served, question=SHORT), ask(served, question=LONG)
    assert short["scope"]["profile"] == short["calibration"]["profile"] == "math"
    assert long["scope"]["profile"] == long["calibration"]["profile"] == "factual"
    for b in (short, long):
        s = b["scope"]
        assert s["tested"] and s["in_scope"] and s["p_value"] >= s["level"] == 0.05
        assert set(s["candidates"]) == {"math", "factual"}
        assert b["calibration"]["target_risk"] is not None, b["calibration"]


@pytest.mark.parametrize("question", ["hi", "x" * 900])
def test_a_request_no_profile_accepts_abstains_without_a_promise(served: TestClient,
                                                                 question: str) -> None:
    b = ask(served, question=question)
    assert b["abstained"] and b["reason"] == "out_of_scope" and b["stage_reached"] == 0
    assert b["calibration"]["target_risk"] is None
    why = b["calibration"]["reason"]
    assert why.startswith("out_of_scope:") and "every calibration profile" in why
    assert f"nearest is {b['scope']['profile']}" in why
    assert b["scope"]["in_scope"] is False and b["scope"]["p_value"] < 0.05
    assert [s["name"] for s in b["stages"]] == ["token"]  # nothing spent on it


def test_out_of_scope_traffic_may_be_served_without_a_promise(profiles: Path) -> None:
    with client(profiles) as c:
        b = ask(c, question="hi", policy={"out_of_scope": "serve"})
    assert b["reason"] != "out_of_scope" and b["calibration"]["target_risk"] is None
    assert b["calibration"]["reason"].startswith("out_of_scope:")
    with client(profiles, out_of_scope="serve") as c:
        b = ask(c, question="hi")
        assert b["reason"] != "out_of_scope" and b["calibration"]["target_risk"] is None
        forced = ask(c, question="hi", policy={"out_of_scope": "abstain"})
        assert forced["reason"] == "out_of_scope"


def test_a_named_profile_gives_no_promise_out_of_its_scope(served: TestClient) -> None:
    b = ask(served, question=LONG, policy={"profile": "math"})
    assert b["calibration"]["profile"] == b["scope"]["profile"] == "math"
    assert b["calibration"]["target_risk"] is None and b["reason"] == "out_of_scope"
    assert "outside the scope of calibration profile math" in b["calibration"]["reason"]
    assert list(b["scope"]["candidates"]) == ["math"]


def test_an_answer_far_longer_than_the_calibration_answers_is_out_of_scope(
        served: TestClient) -> None:
    q = "para: " + SHORT  # in scope of math by the request alone
    b = ask(served, question=q)
    assert b["scope"]["candidates"]["math"] >= 0.05 and b["scope"]["profile"] == "math"
    assert b["scope"]["in_scope"] is False and b["reason"] == "out_of_scope"
    assert "its answer is unlike the answers" in b["calibration"]["reason"]


def test_the_arithmetic_regex_never_grants_a_promise(served: TestClient) -> None:
    # arithmetic-looking, but long like the factual questions: the scope tests decide
    q = "What is 3 + 4 " + "in the long completion template of the kingdom's old capital " * 2
    b = ask(served, question=q)
    assert b["scope"]["profile"] == "factual" != "math"


def test_score_carries_the_scope_too(served: TestClient) -> None:
    r = served.post("/v1/score", json={"question": SHORT, "answer": "7",
                                       "samples": ["7", "7"]}).json()
    assert r["scope"]["tested"] and r["scope"]["profile"] == r["profile"] == "math"
    r = served.post("/v1/score", json={"question": SHORT, "answer": PARAGRAPH}).json()
    assert r["scope"]["in_scope"] is False


def test_a_profile_without_a_scope_test_promises_nothing(profiles: Path,
                                                         tmp_path: Path) -> None:
    raw = json.loads((profiles / "math.json").read_text())
    raw["scope"] = None
    (tmp_path / "old.json").write_text(json.dumps(raw))
    with client(tmp_path / "old.json") as c:
        b = ask(c, question=SHORT)
        cal = c.get("/v1/calibration").json()
    assert b["scope"]["tested"] is False and b["calibration"]["target_risk"] is None
    assert b["calibration"]["reason"].startswith("no_scope:")
    assert b["reason"] != "out_of_scope"  # untested is not out of scope: decided as usual
    assert cal["promise"].startswith("none: this artifact has no scope test")


def test_the_calibration_report_shows_each_scope(served: TestClient) -> None:
    body = served.get("/v1/calibration").json()
    for c in body["calibrations"]:
        sc = c["scope"]
        assert sc["level"] == 0.05 and sc["components"] == ["question_length", "answer_length"]
        assert sc["bank"] + sc["reference"] == 210  # the fit split: 35 % of 600
        assert sc["heldout"]["heldout_in_scope"].endswith("/180")
        assert "scope test" in c["promise"]
