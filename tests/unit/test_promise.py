"""The promise is printed only where it holds: pinned serving settings, every way to lose
the promise named, the default alpha fixed in advance, eval never on fitted data."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.calibration.artifact import CalibratedModel, save_artifact
from service.calibration.build import split
from service.config import Settings
from service.errors import CalibrationError
from service.eval.report import evaluate
from service.main import create_app
from service.state import CandorState
from tests.fakes import FakeEmbedder, FakeEngine
from tests.unit.calib_synth import synthetic_records
from tests.unit.test_calibration import SERVING, make_spec
from tests.unit.test_calibration_api import SCRIPTS


def write(tmp: Path, **kw: object) -> Path:
    path = tmp / "artifact.json"
    save_artifact(make_spec(600, seed=1, **kw), path)
    return path


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("promise"))


def client(artifact: Path | None, engine: FakeEngine | None = None, **s: object) -> TestClient:
    settings = Settings(samples_n=4, calibration=artifact, **s)  # type: ignore[arg-type]
    app = create_app(settings, engine=engine or FakeEngine(scripts=SCRIPTS),
                     embedder=FakeEmbedder())
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def served(artifact: Path) -> Iterator[TestClient]:
    with client(artifact) as c:
        yield c


def ask(c: TestClient, **body: object) -> dict[str, object]:
    r = c.post("/v1/answer", json={"question": "k03", **body})
    assert r.status_code == 200, r.text
    out: dict[str, object] = r.json()
    return out


# -- settings pinned in the artifact ----------------------------------------------------------
def test_other_signal_settings_are_refused_naming_each(artifact: Path) -> None:
    with pytest.raises(CalibrationError) as err:
        CandorState.build(Settings(samples_n=10, sample_temperature=0.7, calibration=artifact))
    msg = err.value.message
    assert "samples_n: calibrated 4, serving 10" in msg
    assert "sample_temperature: calibrated 0.4, serving 0.7" in msg
    with pytest.raises(CalibrationError, match="math_instruction: calibrated 'Answer with the "
                       "number only.', serving None"):
        CandorState.build(Settings(samples_n=4, math_instruction="", calibration=artifact))


def test_math_questions_get_the_instruction_once() -> None:
    """The prompt the model sees (and the collection cache keys on)."""
    from service.calibration.collect import CollectSettings
    from service.cascade.providers import with_instruction
    from service.labelled.items import Item

    i = "Answer with the number only."
    assert with_instruction("What is 3 + 4?", "math", i) == f"What is 3 + 4? {i}"
    assert with_instruction(f"What is 3 + 4? {i}", "math", i) == f"What is 3 + 4? {i}"
    assert with_instruction("Who wrote Hamlet?", "factual", i) == "Who wrote Hamlet?"
    assert with_instruction("What is 3 + 4?", "math", None) == "What is 3 + 4?"
    plain, told = Item("a", "What is 3 + 4?", "7", "numeric", task="math"), Item(
        "b", f"What is 3 + 4? {i}", "7", "numeric", task="math")
    cfg = CollectSettings(instruction=i)
    assert cfg.key(plain) == cfg.key(told)  # the same prompt: one cached answer
    assert CollectSettings().key(plain) != CollectSettings().key(told)


def test_a_version_difference_only_warns(tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, settings=SERVING.model_copy(update={"candor_version": "0.0.9"}))
    with caplog.at_level(logging.WARNING):
        CandorState.build(Settings(samples_n=4, calibration=path))
    assert "candor_version: calibrated '0.0.9'" in caplog.text


def test_another_chat_template_is_refused_when_the_engine_starts(tmp_path: Path) -> None:
    path = write(tmp_path, settings=SERVING.model_copy(update={"chat_template": "abc123"}))
    with pytest.raises(CalibrationError, match="chat_template: calibrated 'abc123'"):
        with client(path):
            pass


def test_requests_outside_the_pinned_settings_carry_no_promise(served: TestClient) -> None:
    inside = ask(served, policy={"target_risk": 0.3})
    assert inside["calibration"]["target_risk"] == 0.3, inside["calibration"]  # type: ignore[index]
    for extra in ({"max_tokens": 7}, {"system": "Answer tersely."}):
        cal = ask(served, policy={"target_risk": 0.3}, **extra)["calibration"]
        assert cal["target_risk"] is None and cal["reason"].startswith("settings:"), cal  # type: ignore[index]


def test_the_default_max_tokens_follows_the_artifact(tmp_path: Path) -> None:
    path = write(tmp_path, settings=SERVING.model_copy(update={"answer_max_tokens": 16}))
    with client(path) as c:  # CANDOR_DEFAULT_MAX_TOKENS unset: the calibrated 16 is served
        assert ask(c, policy={"target_risk": 0.3})["calibration"]["target_risk"] == 0.3  # type: ignore[index]
    with client(path, default_max_tokens=128) as c:  # set explicitly: no promise by default
        cal = ask(c, policy={"target_risk": 0.3})["calibration"]
        assert cal["target_risk"] is None and "max_tokens=128" in cal["reason"]  # type: ignore[index]


def test_max_tokens_is_decided_once_from_the_profiles_pin(tmp_path: Path) -> None:
    """Two profiles pinned to 16 and 32 answer tokens (so no single default is adopted:
    CANDOR_DEFAULT_MAX_TOKENS stays 128), a math request with no max_tokens: the answer is
    generated with its profile's 16, ``finish_reason`` is judged against 16 and the
    decision log records 16 (``calibrate --from-log`` pins its next artifact to it)."""
    import json
    import sqlite3

    from tests.fakes import Script

    for name, tasks, pin in (("math", ("math",), 16), ("factual", ("factual",), 32)):
        save_artifact(make_spec(600, seed=1, profile=name, tasks=tasks, settings=SERVING
                                .model_copy(update={"answer_max_tokens": pin})),
                      tmp_path / f"{name}.json")
    sixteen = " ".join(f"w{i}" for i in range(16))
    engine = FakeEngine(scripts={**SCRIPTS, "long": Script(greedy=sixteen, logprob=-0.01)})
    db = tmp_path / "decisions.sqlite"
    settings = Settings(samples_n=4, calibration=f"{tmp_path}/math.json,{tmp_path}/factual.json",
                        decision_log=db)
    app = create_app(settings, engine=engine, embedder=FakeEmbedder())
    with TestClient(app) as c:
        r = c.post("/v1/chat/completions", json={
            "model": "candor", "task": "math",
            "messages": [{"role": "user", "content": "say it long"}],
            "policy": {"answer_threshold": 0.0, "out_of_scope": "serve"}})  # answered
        assert r.status_code == 200, r.text
        body = r.json()
    assert engine.calls[0][1].max_tokens == 16
    assert body["uncertainty"]["abstained"] is False, body
    assert body["choices"][0]["finish_reason"] == "length"
    with sqlite3.connect(db) as conn:
        (serving,) = conn.execute("SELECT serving FROM decisions").fetchone()
    assert json.loads(serving)["answer_max_tokens"] == 16


def test_a_system_prompt_pinned_as_a_hash_is_compared_as_one(tmp_path: Path) -> None:
    """An artifact fitted from the decision log pins the system prompt as the log keeps it
    (a hash): the same prompt keeps the promise, another one or none loses it."""
    from service.calibration.pinning import system_hash

    pinned = SERVING.model_copy(update={"system_prompt": system_hash("Be brief.")})
    with client(write(tmp_path, settings=pinned)) as c:
        same = ask(c, system="Be brief.", policy={"target_risk": 0.3})["calibration"]
        assert same["target_risk"] == 0.3, same  # type: ignore[index]
        for other in ({"system": "Be verbose."}, {}):
            cal = ask(c, policy={"target_risk": 0.3}, **other)["calibration"]
            assert cal["target_risk"] is None and cal["reason"].startswith("settings:")  # type: ignore[index]


def test_the_served_entry_is_chosen_by_the_target_alone(tmp_path: Path) -> None:
    """A target risk gets the table's largest alpha at or below it, whether or not that one
    passed: a smaller alpha that happened to pass is never quoted instead (that choice
    would look at the data, and each alpha's level-delta statement is its own)."""
    spec = make_spec(600, seed=1)
    ok = [e for e in spec.thresholds["3"] if e.threshold is not None]
    assert len(ok) >= 2, spec.thresholds["3"]
    lo, hi = ok[0], ok[1]
    for rows in spec.thresholds.values():  # as if this alpha had failed at every stage
        for e in rows:                     # while the smaller one passed
            if e.alpha == hi.alpha:
                e.threshold = None
    path = tmp_path / "a.json"
    save_artifact(spec, path)
    with client(path) as c:
        r = c.post("/v1/answer", json={"question": "k03", "policy": {"target_risk": hi.alpha}})
        assert r.status_code == 400, r.text
        assert f"table entry {hi.alpha:g} is not certified" in r.json()["error"]["message"]
        cal = ask(c, policy={"target_risk": lo.alpha})["calibration"]
        assert cal["target_risk"] == lo.alpha  # type: ignore[index]
        mid = (lo.alpha + hi.alpha) / 2  # between two table entries: the lower one serves
        assert ask(c, policy={"target_risk": mid})["calibration"]["target_risk"] == lo.alpha  # type: ignore[index]


def test_an_unsupported_default_is_warned_at_startup(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        CandorState.build(Settings(samples_n=4, calibration=write(tmp_path, default_alpha=0.02)))
    assert any("default target risk 0.02 is not certified" in r.message for r in caplog.records)


# -- no promise where none holds --------------------------------------------------------------
@pytest.mark.parametrize("policy, why", [
    ({"run_all": True, "target_risk": 0.3}, "run_all:"),
    ({"answer_threshold": 0.5, "target_risk": 0.3}, "thresholds:"),
    ({"abstain_threshold": 0.1, "target_risk": 0.5}, "thresholds:"),
])
def test_overrides_void_the_promise_and_say_why(served: TestClient, policy: dict[str, object],
                                                why: str) -> None:
    cal = ask(served, policy=policy)["calibration"]
    assert cal["target_risk"] is None and cal["reason"].startswith(why), cal  # type: ignore[index]
    metrics = served.get("/metrics").text
    assert f'candor_no_promise_total{{why="{why[:-1]}"}} 1.0' in metrics, metrics[-2000:]


def test_uncalibrated_says_so() -> None:
    with client(None) as c:
        cal = ask(c)["calibration"]
        assert cal["target_risk"] is None and cal["reason"].startswith("uncalibrated:")  # type: ignore[index]


def test_self_selected_labels_give_maps_but_no_promise(tmp_path: Path) -> None:
    path = write(tmp_path, labels="self-selected")
    with client(path, answer_threshold=0.7, abstain_threshold=0.1) as c:
        info = c.get("/v1/calibration").json()
        assert info["guarantee"] is False and info["supported"] == {} and info["delta"] is None
        body = ask(c)
        cal = body["calibration"]
        assert body["calibrated"] is True and cal["target_risk"] is None  # type: ignore[index]
        assert cal["reason"].startswith("no_guarantee:") and cal["threshold"] == 0.7  # type: ignore[index]
        bad = c.post("/v1/answer", json={"question": "k01", "policy": {"target_risk": 0.3}})
        assert bad.status_code == 200 and bad.json()["calibration"]["target_risk"] is None


def test_the_default_alpha_is_fixed_before_fitting(tmp_path: Path) -> None:
    """An unsupported default is kept and said, never swapped for one that passed."""
    spec = make_spec(600, seed=1, default_alpha=0.02)
    assert spec.default_alpha == 0.02 and spec.default_supported is False
    supported = [e.alpha for e in CalibratedModel(spec).supported(3)]
    assert supported and min(supported) > 0.02  # other alphas pass, the default does not
    path = tmp_path / "a.json"
    save_artifact(spec, path)
    with client(path) as c:
        assert c.get("/v1/calibration").json()["default_supported"] is False
        for key in list(SCRIPTS)[:4]:  # nothing promised at the default: every question abstains
            body = ask(c, question=key)
            assert body["abstained"] and body["calibration"]["reason"].startswith("unsupported:")  # type: ignore[index]
        assert ask(c, policy={"target_risk": 0.3})["calibration"]["target_risk"] == 0.3  # type: ignore[index]


# -- eval never re-splits; feasibility ---------------------------------------------------------
def test_eval_runs_only_on_questions_the_artifact_never_fitted() -> None:
    records = synthetic_records(600, 1)
    model = CalibratedModel(make_spec(600, seed=1))
    parts = split(records, 1, 0.3)
    summary = evaluate(records, model)
    assert summary["n"] == len(parts["heldout"]) and summary["excluded_fitted"] == 420
    fresh = synthetic_records(50, 77)
    for r in fresh:
        r.key = "fresh-" + r.id
    assert evaluate(parts["heldout"] + fresh, model)["n"] == len(parts["heldout"]) + 50
    with pytest.raises(ValueError, match="were used to fit calibration"):
        evaluate(parts["fit"] + parts["test"], model)


def test_feasibility_bound_is_reported() -> None:
    records = synthetic_records(600, 1)
    spec = make_spec(600, seed=1)
    mu = sum(not r.correct for r in records) / len(records)
    feas = spec.feasibility
    assert feas["mu"] == pytest.approx(mu)
    for a, bound in feas["min_abstention"].items():
        assert bound == pytest.approx(max(0.0, (mu - float(a)) / (1 - float(a))))
    for row in feas["reached"]:  # held-out abstention sits above the bound (up to noise)
        assert row["abstention"] >= row["min_abstention"] - 0.1, row


def test_stages_that_inherit_their_map_do_not_run(tmp_path: Path) -> None:
    """A stage with no map of its own inherits the last one's confidence: running it can
    never change a decision, so the cascade decides at the last own map (same decisions,
    fewer tokens); an audited request still runs every stage for the record."""
    spec = make_spec(600, seed=1)
    spec.maps[1:] = [None] * (len(spec.maps) - 1)
    model = CalibratedModel(spec)
    assert model.decision_stage == 0
    path = tmp_path / "a.json"
    save_artifact(spec, path)
    with client(path, admin_keys="adm") as c:
        for key in list(SCRIPTS)[:6]:
            b = ask(c, question=key, policy={"target_risk": 0.3})
            assert b["stage_reached"] == 0 and [s["name"] for s in b["stages"]] == ["token"]  # type: ignore[index]
        audited = c.post("/v1/answer", json={"question": "k05", "policy": {
            "target_risk": 0.3, "audit_rate": 1.0}}, headers={"Authorization": "Bearer adm"}
                         ).json()  # an admin's raised rate: audited for certain
        assert audited["audit"] and len(audited["stages"]) == 4  # type: ignore[arg-type]
        assert audited["stage_reached"] == 0
