"""The claim-level calibration: multi-part data graded per part, the claim map and threshold
fitted into the artifact, and served only where its promise holds (fake engine)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.calibration.artifact import CalibratedModel, load_artifact, save_artifact
from service.calibration.build import build_artifact
from service.calibration.records import to_records
from service.labelled.datasets import load_dataset
from service.labelled.grading import grade, grade_claims
from service.labelled.parts import ARITHMETIC_HEADER, match_parts
from tests.unit.calib_synth import synthetic_records, with_claims
from tests.unit.test_calibration import SERVING
from tests.unit.test_promise import client


# -- multi-part data, graded per part -----------------------------------------------------
def test_ladder_parts_are_seeded_distinct_and_numbered() -> None:
    a, b = load_dataset("ladder-parts", n=60, seed=3), load_dataset("ladder-parts", n=60, seed=3)
    assert [i.question for i in a] == [i.question for i in b]
    assert len({i.question for i in a}) == 60
    for it in a:
        lines = it.question.split("\n")
        assert lines[0] == ARITHMETIC_HEADER and 2 <= len(it.parts) <= 4
        assert lines[1:] == [f"{k}) {p.question.removesuffix(' Answer with the number only.')}"
                             for k, p in enumerate(it.parts, start=1)]
        assert it.task == "math" and it.grader == "numeric"


def test_wikidata_parts_ask_each_completion_once() -> None:
    items = load_dataset("qa-wikidata-parts", n=20, seed=1)
    parts = [p.id for it in items for p in it.parts]
    assert len(items) == 20 and len(parts) == len(set(parts))
    first = items[0]
    assert first.question.splitlines()[1] == f"1) {first.parts[0].meta['context']} ..."


def test_claims_match_parts_by_number_then_repeated_question_then_position() -> None:
    it = load_dataset("qa-wikidata-parts", n=1, seed=2)[0]
    second = it.parts[1]
    said = [(f"{second.meta['context']} {second.answer}.", None), ("x", None), ("y", 7),
            ("z", 1), ("w", None), ("v", None), ("u", None)]
    assert match_parts(it, said)[:4] == [1, 1, None, 0]
    assert match_parts(it, said)[6] is None  # past the last part: answers none


def test_each_claim_is_graded_against_its_own_part() -> None:
    it = load_dataset("ladder-parts", n=1, seed=0)[0]
    refs = [p.answer for p in it.parts]
    right = "\n".join(f"{k}) {r}" for k, r in enumerate(refs, start=1))
    assert grade(it, right)
    said = [(f"x = {r}", k) for k, r in enumerate(refs, start=1)]
    said[0] = ("x = -1", 1)
    assert grade_claims(it, said) == [False] + [True] * (len(refs) - 1)
    assert not grade(it, "\n".join(f"{k}) {r}" for k, r in enumerate(refs[:-1], start=1)))
    assert not grade(it, right + f"\n{len(refs) + 1}) 5")  # a claim for no part is wrong


def test_records_carry_each_claims_signals_and_label() -> None:
    it = load_dataset("ladder-parts", n=1, seed=0)[0]
    refs = [p.answer for p in it.parts]
    items = [{"text": f"= {r if k > 1 else 'nope'}", "part": k,
              "signals": {"claim_mean_nll": 0.1 * k, "support": None}}
             for k, r in enumerate(refs, start=1)]
    resp = {"answer": "...", "signals": {"n_tokens": 9}, "stages": [],
            "claims": {"items": items}}
    rec = to_records([it], [resp], None)[0]
    assert rec.claims is not None and [c.correct for c in rec.claims] == [False] + [True] * (
        len(refs) - 1)
    assert rec.claims[1].features == {"claim_mean_nll": 0.2} and rec.correct is False


# -- the fit ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def claims_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = with_claims(synthetic_records(900, seed=1), seed=1)
    path = tmp_path_factory.mktemp("claims") / "artifact.json"
    save_artifact(build_artifact(records, dataset="synthetic-parts", settings=SERVING, seed=1,
                                 delta=0.1, holdout=0.3, claim_alpha=0.2), path)
    return path


def test_the_artifact_carries_a_certified_claim_threshold(claims_artifact: Path) -> None:
    spec = load_artifact(claims_artifact).spec
    c = spec.claims
    assert c is not None and c.alpha == 0.2 and c.threshold is not None
    # tested on the in-scope test split, at the artifact's delta
    assert c.test["answers"] == int(spec.heldout["scope"]["test_in_scope"].split("/")[0])
    assert c.test["p_value"] <= spec.delta
    assert c.test["violations"] <= c.test["answers"] * 0.2
    held = c.heldout
    assert held["served"]["violation_rate"] < held["keep_all"]["violation_rate"]
    assert 0 < held["served"]["correct_kept"] < 1 == held["keep_all"]["correct_kept"]
    assert c.feasibility["wrong_share"] > 0
    # the map ranks claims at least as well as its best single signal did out of fold
    assert held["auroc"]["map"] >= max(v for k, v in held["auroc"].items() if k != "map") - 0.03
    assert c.min_stage == (min(spec.max_stage, 2) if "support" in c.map["features"] else 0)


def test_no_claims_no_section_and_self_selected_labels_promise_nothing() -> None:
    plain = build_artifact(synthetic_records(300, seed=2), dataset="s", settings=SERVING,
                           seed=0, delta=0.1, holdout=0.3)
    assert plain.claims is None and CalibratedModel(plain).claims is None
    selfsel = build_artifact(with_claims(synthetic_records(300, seed=2)), dataset="s",
                             settings=SERVING, seed=0, delta=0.1, holdout=0.3,
                             labels="self-selected")
    assert selfsel.claims is None


# -- served ----------------------------------------------------------------------------------
@pytest.fixture
def served(claims_artifact: Path) -> Iterator[TestClient]:
    with client(claims_artifact) as c:
        yield c


def claims_of(c: TestClient, **body: object) -> tuple[dict, dict]:  # type: ignore[type-arg]
    r = c.post("/v1/answer", json={"question": "k03", "claims": True, **body})
    assert r.status_code == 200, r.text
    out = r.json()
    return out, out["claims"]


def test_the_calibrated_claims_keep_what_the_threshold_covers(served: TestClient,
                                                             claims_artifact: Path) -> None:
    spec = json.loads(claims_artifact.read_text())["claims"]
    out, claims = claims_of(served)
    assert claims["calibrated"] and claims["id"] == out["calibration"]["id"]
    assert claims["threshold"] == spec["threshold"] and claims["delta"] == 0.1
    assert claims["items"] and all(c["kept"] == (c["confidence"] >= claims["threshold"])
                                   for c in claims["items"])
    assert out["scope"]["in_scope"] and (claims["target_risk"], claims["reason"]) == (0.2, None)
    report = served.get("/v1/calibration").json()["claims"]
    assert report["target_risk"] == 0.2 and report["threshold"] == spec["threshold"]
    assert report["promise"].startswith("with probability >= 0.9, at most 0.2 of answers")


@pytest.mark.parametrize(("body", "word"), [
    ({"max_tokens": 7}, "settings:"), ({"system": "Answer tersely."}, "settings:")])
def test_the_claim_promise_is_void_outside_the_calibrated_settings(
        served: TestClient, body: dict[str, object], word: str) -> None:
    _, claims = claims_of(served, **body)
    assert claims["calibrated"] and claims["target_risk"] is None
    assert claims["reason"].startswith(word), claims["reason"]


def test_out_of_scope_requests_get_no_claim_promise(served: TestClient) -> None:
    out, claims = claims_of(served, question="k03 " + "and a far longer question " * 40)
    assert not out["scope"]["in_scope"] and claims["calibrated"]
    assert claims["target_risk"] is None and claims["reason"].startswith("out_of_scope:")


def test_a_map_reading_support_promises_nothing_without_samples(
        served: TestClient, claims_artifact: Path) -> None:
    if "support" not in json.loads(claims_artifact.read_text())["claims"]["map"]["features"]:
        pytest.skip("the fitted map does not read support")
    _, claims = claims_of(served, policy={"max_stage": 0})
    assert claims["target_risk"] is None and "support as collected" in claims["reason"]


def test_claim_confidences_follow_the_map(claims_artifact: Path) -> None:
    model = CalibratedModel(load_artifact(claims_artifact).spec)
    assert model.claims is not None
    sure = {"claim_mean_nll": 0.0, "claim_min_token_prob": 1.0, "claim_token_entropy": 0.0,
            "claim_n_tokens": 4.0, "support": 1.0}
    unsure = {"claim_mean_nll": 1.2, "claim_min_token_prob": 0.1, "claim_token_entropy": 1.3,
              "claim_n_tokens": 4.0, "support": 0.1}
    assert model.claims.map(sure) > model.claims.map(unsure) + 0.3
    assert np.isfinite(model.claims.map({}))  # every input missing: the medians


def test_multi_part_datasets_are_collected_in_claims_mode(tmp_path: Path) -> None:
    from service.main import build_parser
    from service.offline.calibrate import run_calibrate
    from service.state import CandorState
    from tests.fakes import FakeEmbedder, FakeEngine, Script

    cache = tmp_path / "c.jsonl"
    args = build_parser().parse_args(["calibrate", "--dataset", "ladder-parts", "--n", "3",
                                      "--max-stage", "1", "--collect-only", "--cache",
                                      str(cache), "--no-progress"])
    engine = FakeEngine(default=Script(greedy="1) 7\n2) 12", samples=["1) 7\n2) 11"]))

    async def fake(state: CandorState) -> None:
        state.attach(engine, FakeEmbedder())

    assert run_calibrate(args, start=fake) == 0
    rows = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        items = row["response"]["claims"]["items"]
        assert [c["part"] for c in items] == [1, 2]
        assert [c["signals"]["support"] for c in items] == [1.0, 0.0]


def test_the_documented_multi_part_rows_load_and_grade(tmp_path: Path) -> None:
    """docs/claims.md's multi-part JSONL example, verbatim."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "claims.md").read_text()
    section = doc.split("### Your own multi-part data", 1)[1]
    rows = section.split("```json\n", 1)[1].split("```", 1)[0]
    (tmp_path / "mp.jsonl").write_text(rows)
    arith, planets = load_dataset(str(tmp_path / "mp.jsonl"))
    assert arith.id == "mp-1" and [p.grader for p in arith.parts] == ["numeric", "text"]
    assert grade(arith, "1) 3 + 4 = 7\n2) Paris")
    assert not grade(arith, "1) 3 + 4 = 8\n2) Paris")
    # unnumbered claims: matched by the part question they repeat, whatever their order
    said = [("Water boils at sea level at 100 degrees.", None),
            ("The largest planet is Jupiter.", None)]
    assert match_parts(planets, said) == [1, 0] and grade_claims(planets, said) == [True, True]


@pytest.fixture(scope="module")
def token_only_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = with_claims(synthetic_records(600, seed=4), seed=4, support=False)
    path = tmp_path_factory.mktemp("claims-tokens") / "artifact.json"
    save_artifact(build_artifact(records, dataset="synthetic-parts", settings=SERVING, seed=4,
                                 delta=0.1, holdout=0.3, claim_alpha=0.2), path)
    return path


@pytest.mark.parametrize("which", ["support", "tokens"])
def test_samples_are_drawn_for_claims_only_when_the_map_reads_them(
        which: str, claims_artifact: Path, token_only_artifact: Path) -> None:
    """The whole answer is decided at stage 0 here (its default target risk is not
    certified, so the policy abstains at once); claims mode then draws the stage-1 samples
    only for a claim map that reads their support."""
    from tests.fakes import FakeEngine
    from tests.unit.test_calibration_api import SCRIPTS

    path = claims_artifact if which == "support" else token_only_artifact
    reads = "support" in json.loads(path.read_text())["claims"]["map"]["features"]
    assert reads is (which == "support")
    engine = FakeEngine(scripts=SCRIPTS)
    with client(path, engine) as c:
        out, claims = claims_of(c)
    assert out["stage_reached"] == 0 and claims["calibrated"]
    drawn = any("samples" in rid for rid, _ in engine.calls)
    assert drawn is reads
    assert all((s["signals"]["support"] is None) is not reads for s in claims["items"])
    if not reads:  # nothing missing: the promise holds without samples
        assert (claims["target_risk"], claims["reason"]) == (0.2, None)


def test_support_is_read_as_it_was_certified() -> None:
    """A map whose support was collected at stage 1 (exact matches) never counts embedding
    matches when served, which could only raise support; one collected with stage 2 needs
    the embedder, and without it promises nothing."""
    from service.cascade.runner import embeds_support
    from service.claims.assess import ClaimCalibration

    def cal(min_stage: int) -> ClaimCalibration:
        return ClaimCalibration("x", lambda f: 0.5, ("support",), 0.5, 0.1, 0.1, min_stage)

    assert embeds_support(None) and embeds_support(cal(2))
    assert not embeds_support(cal(1)) and not embeds_support(cal(0))


def test_a_dataset_mixing_multi_part_rows_with_single_questions_is_refused() -> None:
    records = with_claims(synthetic_records(300, seed=5), seed=5)
    for r in records[::7]:
        r.claims = None
    with pytest.raises(ValueError, match="43 of 300 questions are not multi-part"):
        build_artifact(records, dataset="mixed", settings=SERVING, seed=0, delta=0.1,
                       holdout=0.3)
