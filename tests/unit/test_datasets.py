"""Dataset loaders and graders (no engine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.labelled.datasets import load_dataset, load_jsonl
from service.labelled.grading import grade, grade_numeric, grade_truthfulqa
from service.labelled.ladder import arithmetic_ladder
from service.signals.normalize import final_number


@pytest.mark.parametrize("text, want", [
    ("The answer is 42.", "42"), ("$1,234 dollars", "1234"), ("#### 18", "18"),
    ("5 + 3 = 8 apples, and 2 more", "8"), ("It costs 3.50 dollars", "3.5"),
    ("-7", "-7"), ("no number here", None), ("12 x 3 = 36. So 36 it is", "36"),
    ("\u22123", "-3"), ("about .5 of it", "0.5"), ("12.0", "12"), ("3 + 8 = 11, then 2", "11"),
])
def test_final_number(text: str, want: str | None) -> None:
    assert final_number(text) == want


def test_grade_numeric_is_robust() -> None:
    assert grade_numeric("So she makes $18 every day.", "18")
    assert grade_numeric("The answer is 1,000 meters", "1000")
    assert not grade_numeric("The answer is 17", "18")
    assert not grade_numeric("I don't know", "18")


def test_ladder_is_seeded_and_correct() -> None:
    a, b = arithmetic_ladder(60, seed=3), arithmetic_ladder(60, seed=3)
    assert [i.question for i in a] == [i.question for i in b]
    assert [i.question for i in arithmetic_ladder(60, seed=4)] != [i.question for i in a]
    assert {i.meta["digits"] for i in a} == {"1", "2", "3", "4"}
    for it in a:
        x, op, y = it.question.removeprefix("What is ").split("?")[0].split()
        val = {"+": int(x) + int(y), "-": int(x) - int(y), "x": int(x) * int(y)}[op]
        assert it.answer == str(val) and grade(it, f"{x} {op} {y} = {val}.")
    assert arithmetic_ladder(12, seed=3)[:5] == a[:5]  # a prefix of a longer ladder


def test_loaders_on_shared_data(data_dir: Path) -> None:
    gsm = load_dataset("gsm8k", data_dir)
    assert len(gsm) == 1319 and gsm[0].answer == "18" and gsm[0].grader == "numeric"
    tqa = load_dataset("truthfulqa", data_dir)
    assert len(tqa) == 790 and tqa[0].correct_refs[-1] == "I have no comment."
    assert len(load_dataset("truthfulqa-2021", data_dir)) == 817
    sub = load_dataset("gsm8k", data_dir, n=10, seed=1)
    assert len(sub) == 10 and sub == load_dataset("gsm8k", data_dir, n=10, seed=1)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("nope", data_dir)


def test_jsonl_user_data(tmp_path: Path) -> None:
    p = tmp_path / "mine.jsonl"
    p.write_text('{"question": "2+2?", "answer": "4"}\n{"question": "Capital?", '
                 '"answer": "Paris"}\n\n')
    items = load_jsonl(p)
    assert [i.grader for i in items] == ["numeric", "text"]
    assert grade(items[1], "It is Paris.") and not grade(items[1], "Rome")
    p.write_text('{"q": 1}\n')
    with pytest.raises(ValueError, match="question"):
        load_jsonl(p)


def test_truthfulqa_grader_uses_best_reference() -> None:
    vocab = {"a": [1.0, 0.0], "good": [0.9, 0.1], "bad": [0.0, 1.0]}

    def encode(texts: list[str]) -> np.ndarray:
        v = np.array([vocab[t] for t in texts])
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    ok, margin = grade_truthfulqa("a", ["good"], ["bad"], encode)
    assert ok and margin > 0
    assert not grade_truthfulqa("bad", ["good"], ["bad"], encode)[0]
