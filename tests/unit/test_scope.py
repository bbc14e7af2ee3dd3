"""The scope test (service/calibration/scope.py) on its own: conformal validity over many
refits, power against requests unlike the calibration questions (each component alone),
the answer component, the text it reads, the stored float16 bank, and its refusals.

The embedder is a cheap deterministic fake with meaning: a question's vector is its
cluster's center plus small noise seeded by a hash of its text (unit-normalised), and a
question marked ``[B]`` belongs to another cluster. Question and answer lengths are
log-uniform, so every component of the score is exercised.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from service.calibration.scope import (
    COMPONENTS,
    Component,
    ScopeSpec,
    ScopeTest,
    fit_scope,
    p_values,
    scope_text,
)

DIM = 16
CENTERS = {c: np.random.default_rng(seed).normal(size=64) for c, seed in (("A", 1), ("B", 2))}
OTHER = "[B] "  # a question marked so is embedded near the other cluster's center
FILLER = "what is the capital of the river stone seven blue alpha " * 160  # 8,960 chars
LENGTHS: tuple[Component, ...] = ("question_length", "answer_length")


def embed_with(dim: int = DIM) -> Callable[[list[str]], np.ndarray]:
    def embed(texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), dim))
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
            center = CENTERS["B" if t.startswith(OTHER) else "A"][:dim]
            v = center / np.linalg.norm(center) + 0.15 * np.random.default_rng(seed).normal(
                size=dim)
            out[i] = v / np.linalg.norm(v)
        return out
    return embed


embed = embed_with()


def draw(rng: np.random.Generator, n: int, q: tuple[int, int] = (20, 300),
         a: tuple[int, int] = (1, 12), other: bool = False) -> tuple[list[str], list[str]]:
    """n (question, answer) pairs with log-uniform lengths; every question distinct."""
    ql = np.exp(rng.uniform(np.log(q[0]), np.log(q[1]), n)).astype(int)
    al = np.exp(rng.uniform(np.log(a[0]), np.log(a[1]), n)).astype(int)
    ids = rng.integers(1 << 40, size=n)
    questions = [(f"{OTHER if other else ''}{u:010x} {FILLER}")[:k].strip()
                 for u, k in zip(ids, ql, strict=True)]
    return questions, [FILLER[:k].strip() or "x" for k in al]


def fit(rng: np.random.Generator, n: int, level: float, seed: int,
        components: Sequence[Component] = COMPONENTS,
        instruction: str | None = None) -> ScopeSpec:
    texts, answers = draw(rng, n)
    return fit_scope(texts, answers, embed if "similarity" in components else None,
                     level=level, seed=seed, components=components, instruction=instruction)


# -- validity ---------------------------------------------------------------------------------
def test_requests_drawn_like_the_calibration_set_are_turned_away_at_most_level() -> None:
    """P(p < level) <= level for a request exchangeable with the calibration questions:
    over 200 refits (each a fresh calibration set and bank/reference split), the mean
    share of fresh requests turned away is <= level up to 3 sd of that mean."""
    refits, n, m, level = 200, 100, 50, 0.1
    rng = np.random.default_rng(7)
    full, request = [], []
    for seed in range(refits):
        test = ScopeTest(fit(rng, n, level, seed))
        texts, answers = draw(rng, m)
        full.append(np.mean(p_values(test, texts, answers, embed) < level))
        emb = embed(texts)
        request.append(np.mean([test.p_request(test.request_stat(t, e)) < level
                                for t, e in zip(texts, emb, strict=True)]))
    for name, rates in (("full", full), ("request", request)):
        mean, sd = float(np.mean(rates)), float(np.std(rates, ddof=1) / np.sqrt(refits))
        print(f"scope validity ({name} p-value): turned away {mean:.4f} (sd {sd:.4f}) at "
              f"level {level}")
        assert mean <= level + 3 * sd, (name, mean, sd)
        assert mean >= level / 2, (name, mean)  # not vacuous: the p-values are not all 1


# -- power ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, q, a, other", [
    ("very long questions", (3000, 8000), (1, 12), False),
    ("another cluster's embeddings", (20, 300), (1, 12), True),
    ("much longer answers", (20, 300), (400, 2000), False),
])
def test_requests_unlike_the_calibration_set_are_out_of_scope(
        kind: str, q: tuple[int, int], a: tuple[int, int], other: bool) -> None:
    """Each component alone turns away requests that differ only in what it reads."""
    level, rng = 0.05, np.random.default_rng(11)
    rates, typical = [], []
    for seed in range(5):
        spec = fit(rng, 400, level, seed)
        test = ScopeTest(spec)
        texts, answers = draw(rng, 100, q, a, other)
        p = p_values(test, texts, answers, embed)
        rates.append(np.mean(p < level))
        typical.append(np.mean(p_values(test, *draw(rng, 100), embed) < level))
    print(f"scope power, {kind}: out of scope {np.mean(rates):.3f} (in-distribution "
          f"{np.mean(typical):.3f})")
    assert min(rates) >= 0.9, (kind, rates)
    assert np.mean(typical) <= 0.1, typical  # the same tests keep the ordinary traffic


def test_the_answer_length_alone_puts_a_request_out_of_scope() -> None:
    """A question like the calibration questions, answered with a paragraph where they
    were answered with a word: in scope before generation, out once the answer is known."""
    level, rng = 0.05, np.random.default_rng(13)
    texts, answers = draw(rng, 400, a=(2, 10))
    test = ScopeTest(fit_scope(texts, answers, embed, level=level, seed=0))
    question = sorted(texts, key=len)[len(texts) // 2]  # the median length
    center = CENTERS["A"][:DIM] / np.linalg.norm(CENTERS["A"][:DIM])
    stat = test.request_stat(question, center)  # the cluster's very center
    paragraph = ("The answer depends on several things, which I will now explain one by "
                 "one. ") * 8
    assert test.p_request(stat) >= 0.5
    assert test.p_full(stat, "Paris") >= 0.5
    assert test.p_full(stat, paragraph) < level
    p = p_values(test, [question, question], ["Paris", paragraph], embed)
    assert p[0] >= level > p[1]


# -- what it reads ----------------------------------------------------------------------------
def test_scope_text_strips_the_trailing_instruction_and_prepends_the_context() -> None:
    instr = "Answer with the number only."
    assert scope_text("  What is 7 * 6? Answer with the number only.  ", None, instr) == (
        "What is 7 * 6?")
    assert scope_text("Who wrote it?", "  The book was written by Ann. ", None) == (
        "The book was written by Ann.\n\nWho wrote it?")
    assert scope_text(f"What is 2 + 2? {instr}", "Some context.", instr) == (
        "Some context.\n\nWhat is 2 + 2?")
    assert scope_text(f"{instr} What is 7 * 6?", None, instr) == f"{instr} What is 7 * 6?"
    assert scope_text("What is 7 * 6?", "   ", instr) == "What is 7 * 6?"
    # the fitted test reads questions the same way: the instruction adds no length
    rng = np.random.default_rng(17)
    test = ScopeTest(fit(rng, 60, 0.1, 0, LENGTHS, instruction=instr))
    q = "What is the capital of the river stone?"
    assert test.text(f"{q} {instr}", None) == q
    assert test.request_stat(test.text(f"{q} {instr}", None), None) == test.request_stat(q, None)
    p_with_context = test.p_request(test.request_stat(test.text(q, "x" * 3000), None))
    assert p_with_context < test.p_request(test.request_stat(q, None))  # the context counts


# -- what is stored ---------------------------------------------------------------------------
@pytest.mark.parametrize("components", [COMPONENTS, LENGTHS])
def test_the_stored_scope_test_gives_the_fitted_p_values(
        components: tuple[Component, ...]) -> None:
    rng = np.random.default_rng(19)
    n = 120
    spec = fit(rng, n, 0.05, 3, components)
    if "similarity" in components:  # the bank: float16, little-endian, one row a question
        raw = base64.b64decode(spec.bank)
        assert spec.dim == DIM and len(raw) == (n // 2) * DIM * 2
        bank = np.frombuffer(raw, dtype="<f2").astype(float).reshape(n // 2, DIM)
        assert np.allclose(np.linalg.norm(bank, axis=1), 1.0, atol=2e-3)
    else:
        assert spec.dim == 0 and spec.bank == ""
    texts, answers = draw(rng, 40)
    far_t, far_a = draw(rng, 20, (500, 3000), (20, 200), other=True)
    texts, answers = texts + far_t, answers + far_a
    want = p_values(ScopeTest(spec), texts, answers, embed)
    assert len(set(want.tolist())) > 10  # p-values that can differ
    for raw_json in (spec.model_dump_json(), json.dumps(spec.model_dump())):
        again = ScopeSpec.model_validate_json(raw_json)
        assert np.array_equal(p_values(ScopeTest(again), texts, answers, embed), want)
    if "similarity" in components:  # scored as stored: a float16 request scores the same
        test, vecs = ScopeTest(spec), embed(texts)
        for t, v in zip(texts[:10], vecs[:10], strict=True):
            assert test.request_stat(t, v) == test.request_stat(t, v.astype(np.float16))


# -- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [0.01, 0.02, 0.04, 0.05, 0.07, 0.1, 0.2, 0.25, 0.3, 1 / 3])
def test_a_reference_too_small_to_reject_at_the_level_is_refused(level: float) -> None:
    """The smallest p-value is 1 / (n_ref + 1), and a request is out of scope when p <
    level: fit_scope must refuse exactly the references whose smallest p-value is not
    below the level, naming the size it needs, and accept the rest, which can reject."""
    need = next(m for m in range(1, 1000) if 1 / (m + 1) < level)
    rng = np.random.default_rng(23)
    too_few = max(2, need - 1)
    if too_few < need:
        texts, answers = draw(rng, 2 * too_few)
        with pytest.raises(ValueError) as err:
            fit_scope(texts, answers, None, level=level, components=LENGTHS)
        msg = str(err.value)
        assert f"needs at least {need} reference questions" in msg, msg
        assert f"has {too_few}" in msg and f"level {level:g}" in msg, msg
    texts, answers = draw(rng, max(4, 2 * need))
    test = ScopeTest(fit_scope(texts, answers, None, level=level, components=LENGTHS))
    far = test.p_full(test.request_stat("x" * 8000, None), "y" * 4000)
    assert far < level, (level, need, far)  # the smallest reference it accepts can reject


def test_too_few_questions_or_no_embedder_are_refused() -> None:
    texts, answers = draw(np.random.default_rng(29), 40)
    with pytest.raises(ValueError, match="needs at least"):
        fit_scope(texts[:3], answers[:3], None, level=0.5, components=LENGTHS)
    with pytest.raises(ValueError, match="similarity component needs an embedder"):
        fit_scope(texts, answers, None, level=0.1)


def test_an_embedding_of_another_dimension_is_refused_naming_both() -> None:
    rng = np.random.default_rng(31)
    test = ScopeTest(fit(rng, 60, 0.1, 0))
    q = "What is the capital of the river stone?"
    with pytest.raises(ValueError) as err:
        test.request_stat(q, embed_with(8)([q])[0])
    assert "16-dimensional" in str(err.value) and "have 8" in str(err.value), str(err.value)
    with pytest.raises(ValueError, match="16-dimensional.*have 32"):
        p_values(test, [q], ["x"], embed_with(32))
    with pytest.raises(ValueError, match="needs the request's embedding"):
        test.request_stat(q, None)


# -- known bug --------------------------------------------------------------------------------
def test_an_answer_only_scope_test_round_trips_through_json() -> None:
    rng = np.random.default_rng(37)
    spec = fit(rng, 60, 0.1, 0, ("answer_length",))
    texts, answers = draw(rng, 20, a=(1, 400))
    want = p_values(ScopeTest(spec), texts, answers, None)
    again = ScopeSpec.model_validate_json(spec.model_dump_json())
    assert np.array_equal(p_values(ScopeTest(again), texts, answers, None), want)
