"""Dataset loaders and graders (no engine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service.labelled.datasets import DatasetError, load_dataset, load_jsonl
from service.labelled.grading import grade, grade_numeric, grade_text, grade_truthfulqa
from service.labelled.ladder import arithmetic_ladder
from service.signals.normalize import final_number, is_plain_number


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


def test_ladders_hold_each_question_once() -> None:
    """One question, one item: the artifact's split keys name questions, so a repeat in
    the held-out split of a fitted question would be left out of `candor eval` (600
    ladder-mix draws used to hold 469 distinct questions, the repeats mostly easy ones)."""
    from collections import Counter

    from service.labelled.ladder import mixed_ladder

    for items in (arithmetic_ladder(300), mixed_ladder(600)):
        assert len({i.key for i in items}) == len(items)
    digits = Counter(i.meta["digits"] for i in mixed_ladder(600))
    assert 150 < digits["1"] <= 255 and digits["4"] > 0  # one-digit questions run out


def test_loaders_on_packaged_data(data_dir: Path) -> None:
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


def test_aliases_in_answer_or_answers(tmp_path: Path) -> None:
    p = tmp_path / "nq.jsonl"
    p.write_text(
        '{"question": "who wrote hamlet", "answer": ["William Shakespeare", "Shakespeare"]}\n'
        '{"question": "capital of france", "answers": ["Paris"], "answer": "City of Paris"}\n'
        '{"question": "how many legs has a spider", "answer": [8, "eight"]}\n'
        '{"question": "2+2", "answers": ["4", "4.0"], "id": "sum", "task": "math"}\n')
    shake, paris, legs, total = load_jsonl(p)
    assert shake.correct_refs == ("William Shakespeare", "Shakespeare")
    assert paris.correct_refs == ("City of Paris", "Paris") and paris.answer == "City of Paris"
    assert (legs.grader, total.grader, total.id, total.task) == ("text", "numeric", "sum", "math")
    assert grade(shake, "It was written by Shakespeare.")  # any alias, contained
    assert grade(paris, "The answer is paris!") and not grade(paris, "Parisian food")
    assert grade(legs, "A spider has eight legs.") and grade(legs, "8 legs")
    assert grade(total, "2 + 2 = 4") and not grade(total, "2 + 2 = 5")


def test_triviaqa_answer_objects(tmp_path: Path) -> None:
    """TriviaQA's `answer` is an object: its `value` and `aliases` all count."""
    p = tmp_path / "tqa.jsonl"
    p.write_text('{"question": "Which Lloyd Webber musical premiered in the US on 10th '
                 'December 1993?", "answer": {"aliases": ["Sunset Blvd", "Sunset Boulevard"], '
                 '"normalized_aliases": ["sunset blvd"], "value": "Sunset Boulevard", '
                 '"type": "WikipediaEntity"}}\n'
                 '{"question": "x", "answer": {"type": "Numerical"}}\n')
    with pytest.raises(DatasetError, match=r"tqa.jsonl:2: an object 'answer' needs 'value'"):
        load_jsonl(p)
    p.write_text(p.read_text().splitlines()[0] + "\n")
    (item,) = load_jsonl(p)
    assert item.correct_refs == ("Sunset Boulevard", "Sunset Blvd")
    assert grade(item, "It was Sunset Blvd.") and not grade(item, "Cats")


@pytest.mark.parametrize("answer, ref, ok", [
    ("The Beatles", "Beatles", True),  # articles dropped
    ("U.S.A.", "USA", True),  # punctuation dropped
    ("the answer is   NEW   york city", "New York", True),
    ("Newark", "New York", False),
    ("an", "a", False),  # a reference that normalises to nothing never matches
])
def test_squad_normalised_containment(answer: str, ref: str, ok: bool) -> None:
    assert grade_text(answer, [ref]) is ok


def test_numeric_only_when_every_alias_is_a_number() -> None:
    aliases = ("42", "-3.5", "1,000", "$12", "7%", "4 apples", "IV", "")
    assert [is_plain_number(a) for a in aliases] \
        == [True, True, True, True, True, False, False, False]


def test_csv_question_answer(tmp_path: Path) -> None:
    p = tmp_path / "mine.csv"
    p.write_text('\ufeffQuestion,Answer\nWhat is 6 x 7?,42\nCapital of Italy?,"[""Rome"", '
                 '""Roma""]"\n')
    calc, rome = load_dataset(str(p), tmp_path)
    assert calc.grader == "numeric" and grade(calc, "6 x 7 = 42")
    assert rome.correct_refs == ("Rome", "Roma") and grade(rome, "Roma, of course")


@pytest.mark.parametrize("name, text, where, what", [
    ("a.jsonl", '{"question": "q", "answer": "a"}\n{"question": "q2", "answer": \n', ":2:",
     "not valid JSON"),
    ("b.jsonl", '\n\n["q", "a"]\n', ":3:", "JSON object"),
    ("c.jsonl", '{"question": "q"}\n', ":1:", "'answer' or 'answers'"),
    ("d.jsonl", '{"question": "", "answer": "a"}\n', ":1:", "'question'"),
    ("e.jsonl", '{"question": "q", "answer": {"text": "a"}}\n', ":1:", "needs 'value'"),
    ("f.jsonl", '{"question": "q", "answer": ["a", null]}\n', ":1:", "every alias"),
    ("g.jsonl", '{"question": "q", "answer": "a", "task": "poetry"}\n', ":1:", "task must"),
    ("h.csv", "prompt,label\nq,a\n", ":1:", "header"),
    ("i.csv", "question,answer\nq,a\nq2,a2,extra\n", ":3:", "more cells"),
    ("j.jsonl", "", "j.jsonl:", "no questions"),
    ("k.jsonl", '{"question": "q", "parts": "7"}\n', ":1:", "'parts' must be a non-empty list"),
    ("l.jsonl", '{"question": "q", "parts": ["7"], "answer": "7"}\n', ":1:", "not in 'answer'"),
    ("m.jsonl", '{"question": "q", "parts": ["7", {"question": "x"}]}\n', ":1: part 2:",
     "'answer' or 'answers'"),
    ("n.jsonl", '{"question": "q", "parts": ["7", [null]]}\n', ":1: part 2:", "every alias"),
])
def test_malformed_rows_name_file_and_line(tmp_path: Path, name: str, text: str, where: str,
                                           what: str) -> None:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(DatasetError) as info:
        load_dataset(str(p), tmp_path)
    assert f"{p}{where}" in str(info.value) or where in str(info.value)
    assert what in str(info.value)
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(str(tmp_path / "missing.csv"), tmp_path)


@pytest.mark.parametrize("command", ["calibrate", "eval"])
def test_cli_reports_a_bad_line_without_a_traceback(tmp_path: Path, command: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"question": "2+2?", "answer": "4"}\n{"question": "3+3?" "answer": "6"}\n')
    out = subprocess.run(
        [str(Path(sys.executable).with_name("candor")), command, "--dataset", str(p),
         "--max-stage", "0"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stderr + out.stdout
    assert out.stderr.strip().splitlines()[-1].startswith(f"candor: {p}:2: not valid JSON")


def test_the_documented_examples_load(tmp_path: Path) -> None:
    """docs/api.md's JSONL and CSV examples, verbatim."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    section = doc.split("## Bring your own labelled data", 1)[1].split("\n## ", 1)[0]
    blocks = {}
    for part in section.split("```")[1::2]:
        lang, _, body = part.partition("\n")
        blocks[lang] = body
    (tmp_path / "doc.jsonl").write_text(blocks["json"])
    (tmp_path / "doc.csv").write_text(blocks["csv"])
    shake, paris, legs = load_dataset(str(tmp_path / "doc.jsonl"), tmp_path)
    assert grade(shake, "It was written by Shakespeare.") and paris.id == "geo-1"
    assert legs.grader == "numeric" and grade(legs, "A spider has 8 legs.")
    calc, rome = load_dataset(str(tmp_path / "doc.csv"), tmp_path)
    assert calc.grader == "numeric" and rome.correct_refs == ("Rome", "Roma")
