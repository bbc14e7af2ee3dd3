"""Claims mode through the API (fake engine) and the calibrated branch of ``assess``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from service.claims.assess import ClaimCalibration, ClaimInputs, assess
from service.claims.split import RuleSplitter
from service.engine.protocol import TokenInfo
from tests.fakes import FakeEngine, Script
from tests.unit.test_api import make_client

THREE = "1. 3 + 4 = 7\n2. 6 x 2 = 12\n3. 15 - 9 = 4"
ASK = "Answer each on its own line: 1) 3 + 4 2) 6 x 2 3) 15 - 9"


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(scripts={"3 + 4": Script(greedy=THREE, samples=[
        "1) 7\n2) 12\n3) 6", "1. 7\n2. 12\n3. 6", "1. 7\n2. 12\n3. 4", "1) 7\n2) 11\n3) 6"])})


def post(engine: FakeEngine, **body: object) -> dict:  # type: ignore[type-arg]
    with make_client(engine) as c:
        r = c.post("/v1/answer", json={"question": ASK, **body})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_claims_are_off_unless_asked(engine: FakeEngine) -> None:
    assert post(engine)["claims"] is None


def test_each_claim_gets_its_span_part_signals_and_support(engine: FakeEngine) -> None:
    out = post(engine, claims=True, policy={"max_stage": 1})
    claims = out["claims"]
    assert [(c["text"], c["part"]) for c in claims["items"]] == [
        ("3 + 4 = 7", 1), ("6 x 2 = 12", 2), ("15 - 9 = 4", 3)]
    for c in claims["items"]:
        start, end = c["span"]
        assert out["answer"][start:end] == c["text"]
        assert c["signals"]["claim_n_tokens"] > 0 and c["kept"] is True
    assert [c["signals"]["support"] for c in claims["items"]] == [1.0, 0.75, 0.25]
    conf = [c["confidence"] for c in claims["items"]]
    assert conf[0] > conf[1] > conf[2]  # same token signals: support orders them
    assert claims["answer"] == out["answer"] and claims["splitter"] == "rules"
    assert (claims["calibrated"], claims["target_risk"], claims["threshold"]) == (
        False, None, None)
    assert claims["reason"].startswith("uncalibrated:")


def test_max_stage_0_scores_claims_from_tokens_alone(engine: FakeEngine) -> None:
    out = post(engine, claims=True, policy={"max_stage": 0})
    assert all(c["signals"]["support"] is None for c in out["claims"]["items"])
    assert not any("samples" in rid for rid, _ in engine.calls)


def test_samples_the_stage_loop_skipped_are_drawn_and_counted(engine: FakeEngine) -> None:
    decided_at_0 = {"max_stage": 1, "answer_threshold": 0.0, "abstain_threshold": 0.0}
    plain = post(engine, policy=decided_at_0)
    assert plain["stage_reached"] == 0 and plain["claims"] is None
    out = post(engine, claims=True, policy=decided_at_0)
    assert out["stage_reached"] == 0
    assert out["claims"]["items"][0]["signals"]["support"] == 1.0
    assert out["usage"]["completion_tokens"] > plain["usage"]["completion_tokens"]


def test_chat_carries_claims_in_uncertainty(engine: FakeEngine) -> None:
    with make_client(engine) as c:
        r = c.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": ASK}], "claims": True,
            "policy": {"max_stage": 1}})
        plain = c.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": ASK}]})
    assert r.status_code == 200, r.text
    assert len(r.json()["uncertainty"]["claims"]["items"]) == 3
    assert plain.json()["uncertainty"]["claims"] is None


def test_claims_must_be_a_boolean(engine: FakeEngine) -> None:
    with make_client(engine) as c:
        r = c.post("/v1/answer", json={"question": ASK, "claims": "yes"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "claims"


def calibrated(threshold: float | None) -> ClaimCalibration:
    def by_support(features: Mapping[str, float]) -> float:
        return features.get("support", 0.0)

    return ClaimCalibration("claims-test", by_support, ("support",), threshold, 0.1, 0.05)


def run(calibration: ClaimCalibration | None, void: str | None = None):  # type: ignore[no-untyped-def]
    tokens = [TokenInfo(w, -0.1, (-0.1, -3.0)) for w in THREE.split()]
    inputs = ClaimInputs("q", THREE, tokens, "math",
                         samples=["1) 7\n2) 12\n3) 6", "1) 7\n2) 11\n3) 4"])
    return asyncio.run(assess(inputs, RuleSplitter(), calibration, void))


def test_a_calibrated_threshold_keeps_covered_claims_and_promises() -> None:
    out = run(calibrated(0.75))
    assert [c.confidence for c in out.items] == [0.999, 0.5, 0.5]  # capped below 1
    assert [c.kept for c in out.items] == [True, False, False]
    assert out.answer == "1. 3 + 4 = 7"
    assert (out.calibrated, out.id, out.target_risk, out.delta, out.reason) == (
        True, "claims-test", 0.1, 0.05, None)


def test_no_promise_without_a_certified_threshold_or_when_void() -> None:
    out = run(calibrated(None))
    assert all(c.kept for c in out.items) and out.target_risk is None
    assert out.reason is not None and out.reason.startswith("unsupported:")
    void = run(calibrated(0.75), void="out_of_scope: not like the calibration questions")
    assert void.target_risk is None and void.reason is not None
    assert void.reason.startswith("out_of_scope:") and void.answer == "1. 3 + 4 = 7"


def test_nothing_kept_serves_nothing() -> None:
    out = run(calibrated(1.0))
    assert not any(c.kept for c in out.items) and out.answer == ""
