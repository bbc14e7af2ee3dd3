"""Signal maths on hand-computed cases, including the edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.errors import BadRequest
from service.signals.consistency import cluster_ids, consistency_stats
from service.signals.judge import cosine_support, p_true_from_top
from service.signals.normalize import final_number, normalize_answer, normalize_text, resolve_task
from service.signals.semantic import (
    agglomerative_clusters,
    discrete_entropy,
    mean_pairwise_similarity,
    semantic_stats,
)
from service.signals.token import token_stats, topk_entropy

LN2, LN4 = math.log(2), math.log(4)


class TestTokenSignals:
    def test_topk_entropy_uniform(self) -> None:
        assert topk_entropy([math.log(0.5)] * 2) == pytest.approx(LN2)
        assert topk_entropy([math.log(0.25)] * 4) == pytest.approx(LN4)

    def test_topk_entropy_renormalises(self) -> None:
        # two tokens of 0.2 each: renormalised to 0.5/0.5
        assert topk_entropy([math.log(0.2), math.log(0.2)]) == pytest.approx(LN2)

    def test_topk_entropy_single_token_is_zero(self) -> None:
        assert topk_entropy([-0.3]) == pytest.approx(0.0)

    def test_token_stats_hand_computed(self) -> None:
        st = token_stats([-0.1, -0.3], [[-0.1, -2.0], [math.log(0.5), math.log(0.5)]])
        assert st.n_tokens == 2
        assert st.mean_nll == pytest.approx(0.2)
        assert st.mean_logprob == pytest.approx(-0.2)
        assert st.min_token_prob == pytest.approx(math.exp(-0.3))
        p = np.exp([-0.1, -2.0]) / np.exp([-0.1, -2.0]).sum()
        h0 = float(-(p * np.log(p)).sum())
        assert st.token_entropy == pytest.approx((h0 + LN2) / 2)
        assert st.confidence == pytest.approx(math.exp(-0.2))

    def test_empty_answer_has_no_statistics(self) -> None:
        st = token_stats([], [])
        assert st.n_tokens == 0 and st.mean_nll is None and st.token_entropy is None
        assert st.confidence == 0.0

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
    def test_non_finite_rejected(self, bad: float) -> None:
        with pytest.raises(BadRequest):
            token_stats([-0.1, bad])
        with pytest.raises(BadRequest):
            token_stats([-0.1], [[bad, -1.0]])

    def test_positive_logprob_rejected(self) -> None:
        with pytest.raises(BadRequest):
            token_stats([0.5])

    def test_top_length_mismatch_rejected(self) -> None:
        with pytest.raises(BadRequest):
            token_stats([-0.1, -0.2], [[-0.1]])


class TestNormalisation:
    @pytest.mark.parametrize(
        ("text", "want"),
        [("3 + 8 = 11", "11"), ("The answer is $1,234.", "1234"), ("about 2.50 dollars", "2.5"),
         ("-7", "-7"), ("no digits", None), ("12.0", "12")],
    )
    def test_final_number(self, text: str, want: str | None) -> None:
        assert final_number(text) == want

    def test_normalize_text(self) -> None:
        assert normalize_text("  The Eiffel Tower!  It is in Paris.") == "eiffel tower"
        assert normalize_answer("Paris.", "factual") == normalize_answer("paris", "factual")

    def test_resolve_task(self) -> None:
        assert resolve_task("auto", "What is 3 + 8?") == "math"
        assert resolve_task("auto", "What is the capital of France?") == "factual"
        assert resolve_task("open", "What is 3 + 8?") == "open"


class TestConsistency:
    def test_cluster_ids_first_appearance(self) -> None:
        assert cluster_ids(["b", "a", "b", "c"]) == [0, 1, 0, 2]

    def test_hand_computed(self) -> None:
        st = consistency_stats("3 + 8 = 11", ["11", "The answer is 11.", "12"], "math")
        assert st.normalized == ["11", "11", "12"]
        assert st.consistency == pytest.approx(2 / 3)
        assert st.n_clusters == 2 and not st.homogeneous

    def test_all_identical_is_homogeneous(self) -> None:
        st = consistency_stats("Paris", ["Paris.", "paris", "PARIS!"], "factual")
        assert st.homogeneous and st.n_clusters == 1 and st.consistency == 1.0

    def test_homogeneous_even_when_greedy_differs(self) -> None:
        st = consistency_stats("12", ["11", "11"], "math")
        assert st.homogeneous and st.consistency == 0.0

    def test_one_sample_is_not_homogeneous(self) -> None:
        st = consistency_stats("11", ["11"], "math")
        assert not st.homogeneous and st.consistency == 1.0

    def test_empty_answer_and_no_samples(self) -> None:
        st = consistency_stats("", ["", "x"], "factual")
        assert st.consistency == 0.5
        with pytest.raises(ValueError):
            consistency_stats("11", [], "math")


class TestSemantic:
    def test_discrete_entropy(self) -> None:
        assert discrete_entropy([0, 0, 1, 1]) == pytest.approx(LN2)
        assert discrete_entropy([0, 0, 0]) == pytest.approx(0.0)
        assert discrete_entropy([0, 1, 2, 3]) == pytest.approx(LN4)

    def test_mean_pairwise_similarity(self) -> None:
        e = np.eye(3)
        assert mean_pairwise_similarity(e) == pytest.approx(0.0)
        same = np.tile(np.array([[0.6, 0.8]]), (3, 1))
        assert mean_pairwise_similarity(same) == pytest.approx(1.0)
        assert mean_pairwise_similarity(e[:1]) == 1.0

    def test_agglomerative(self) -> None:
        a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
        near = np.array([0.995, 0.0998])
        near /= np.linalg.norm(near)
        assert agglomerative_clusters(np.stack([a, near, b]), 0.85) == [0, 0, 1]
        assert agglomerative_clusters(np.stack([a]), 0.85) == [0]
        assert agglomerative_clusters(np.zeros((0, 2)), 0.85) == []

    def test_semantic_stats(self) -> None:
        emb = np.stack([np.eye(2)[0], np.eye(2)[0], np.eye(2)[1]])
        st = semantic_stats([0, 0, 0, 1], emb)
        assert st["greedy_share"] == pytest.approx(2 / 3)
        assert st["semantic_entropy"] == pytest.approx(
            -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3)
        )
        assert st["mean_similarity"] == pytest.approx(1 / 3)


class TestJudge:
    def test_p_true(self) -> None:
        p = p_true_from_top(["True", "False", "The"], [math.log(0.6), math.log(0.2), -1.0])
        assert p == pytest.approx(0.75)
        assert p_true_from_top([" yes", "No."], [math.log(0.3), math.log(0.1)]) == (
            pytest.approx(0.75)
        )

    def test_p_true_absent(self) -> None:
        assert p_true_from_top(["The", "A"], [-0.1, -2.0]) is None
        assert p_true_from_top(["True"], [float("nan")]) is None

    def test_cosine_support_clipped(self) -> None:
        assert cosine_support(np.array([1.0, 0.0]), np.array([-1.0, 0.0])) == 0.0
        assert cosine_support(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 1.0


def test_semantic_signal_groups_math_by_final_number() -> None:
    import asyncio

    from service.signals.base import SignalContext
    from service.signals.semantic import SemanticSignal
    from tests.fakes import FakeEmbedder

    ctx = SignalContext(question="What is 6 + 6?", task="math", answer="6 + 6 = 12",
                        samples=["12", "The answer is 12.", "21", "12"],
                        embed_provider=FakeEmbedder().encode)
    res = asyncio.run(SemanticSignal().score(ctx))
    assert res.clusters == [0, 0, 1, 0]  # the samples' clusters; the greedy answer's is 0
    assert res.confidence == pytest.approx(0.75)
    assert res.values["semantic_entropy"] == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_early_stop_sampling_stops_once_decided() -> None:
    """Rounds of 2: unanimous samples decide after 4 (posterior 0.97 >= 0.9); a split
    stays undecided to N; samples_drawn says how many were drawn."""
    import asyncio

    from fastapi.testclient import TestClient

    from service.config import Settings
    from service.main import create_app
    from service.signals.early_stop import decided, majority_posterior, rounds
    from tests.fakes import FakeEmbedder, FakeEngine, Script

    assert rounds(10, 3) == [3, 3, 3, 1] and majority_posterior(2, 4) == 0.5
    assert decided(4, 4, 0.9) and not decided(2, 4, 0.9) and decided(0, 4, 0.9)
    engine = FakeEngine(scripts={
        "sure": Script(greedy="4", samples=["4"] * 10),
        "split": Script(greedy="4", samples=["4", "5"] * 5),
    })
    s = Settings(samples_n=10, samples_adaptive=True, samples_round=2, samples_confidence=0.9)
    with TestClient(create_app(s, engine=engine, embedder=FakeEmbedder())) as c:
        for q, drawn in (("sure", 4), ("split", 10)):
            body = c.post("/v1/answer", json={"question": q, "policy": {"run_all": True,
                                                                        "max_stage": 1}}).json()
            assert body["signals"]["samples_drawn"] == drawn, (q, body["signals"])
    rounds_asked = [p.n for rid, p in engine.calls if "-samples-" in rid]
    assert rounds_asked == [2, 2] + [2] * 5
    asyncio.get_event_loop_policy()  # (no loop left running)


def test_a_single_cluster_without_the_greedy_answer_is_evidence() -> None:
    """Homogeneous samples that hold the greedy answer are uninformative (fallback on
    stage 0); unanimous samples that exclude it (agreement 0) are used: the greedy answer
    is then likely wrong, and the confidence must be allowed to fall."""
    from fastapi.testclient import TestClient

    from service.config import Settings
    from service.main import create_app
    from service.signals.consistency import sampling_uninformative
    from tests.fakes import FakeEmbedder, FakeEngine, Script

    assert sampling_uninformative(True, 1.0) and not sampling_uninformative(True, 0.0)
    assert sampling_uninformative(True, 0.0, rule="any")
    engine = FakeEngine(scripts={"agree": Script(greedy="4", samples=["4"] * 4),
                                 "other": Script(greedy="4", samples=["5"] * 4)})
    with TestClient(create_app(Settings(samples_n=4), engine=engine,
                               embedder=FakeEmbedder())) as c:
        body = {"policy": {"run_all": True, "max_stage": 2}}
        same = c.post("/v1/answer", json={"question": "agree", **body}).json()
        other = c.post("/v1/answer", json={"question": "other", **body}).json()
    assert same["signals"]["homogeneous"] and other["signals"]["homogeneous"]
    assert [s["informative"] for s in same["stages"][1:]] == [False, False]
    assert same["fallback"] == "token"
    assert [s["informative"] for s in other["stages"][1:]] == [True, True]
    assert other["confidence"] < same["confidence"]
