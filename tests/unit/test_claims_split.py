"""The deterministic claim splitter (service/claims/split.py): its rules, one by one."""

from __future__ import annotations

import asyncio

import pytest

from service.claims.split import RuleSplitter, kept_answer, split_claims


def texts(answer: str) -> list[tuple[int | None, str]]:
    return [(c.part, c.text) for c in split_claims(answer)]


def test_numbered_lines_are_enumerated_parts() -> None:
    answer = "1. 3 + 4 = 7\n2) 6 x 2 = 12\n(3) 15 - 9 = 4"
    assert texts(answer) == [(1, "3 + 4 = 7"), (2, "6 x 2 = 12"), (3, "15 - 9 = 4")]


def test_parts_on_one_line_split_at_consecutive_markers() -> None:
    assert texts("1) 7 2) 12 3) 6") == [(1, "7"), (2, "12"), (3, "6")]
    # text before 1) is a heading; a marker out of sequence stays inside its part
    assert texts("Answers: 1) 7 2) 12 5) x 3) 6") == [(1, "7"), (2, "12 5) x"), (3, "6")]


def test_bullets_are_claims_without_part() -> None:
    assert texts("- Paris\n* Rome\n• Oslo\na) Bern") == [
        (None, "Paris"), (None, "Rome"), (None, "Oslo"), (None, "Bern")]


def test_sentences_split_but_not_at_decimals_abbreviations_or_initials() -> None:
    answer = "It has 2.1 million people, e.g. many. Dr. Smith agrees! J. Doe asked? Yes."
    assert [t for _, t in texts(answer)] == [
        "It has 2.1 million people, e.g. many.", "Dr. Smith agrees!", "J. Doe asked?", "Yes."]


def test_headings_are_not_claims_and_stay_in_the_kept_answer() -> None:
    answer = "Here you go:\n- one\n- two"
    claims = split_claims(answer)
    assert [c.text for c in claims] == ["one", "two"]
    assert kept_answer(answer, claims, [False, True]) == "Here you go:\n- two"


@pytest.mark.parametrize("answer", ["", "   ", "\n\n", "-", "1."])
def test_no_claims_in_empty_answers_or_bare_markers(answer: str) -> None:
    assert split_claims(answer) == [] or all(c.text.strip() for c in split_claims(answer))


def test_spans_index_the_answer_exactly() -> None:
    answers = ["1. 3 + 4 = 7\r\n2. 6 x 2 = 12\n\n3. 15 - 9 = 4  ", "  Paris. Rome!\n\n- x",
               "Answers: 1) 7 2) 12", "7", "The answer is 4."]
    for answer in answers:
        for c in split_claims(answer):
            assert answer[c.start:c.end] == c.text and c.text == c.text.strip()
            assert c.extent[0] <= c.start < c.end <= c.extent[1] <= len(answer)


def test_extents_tile_the_claims_so_kept_answers_keep_their_layout() -> None:
    answer = "1. 3 + 4 = 7\n2. 6 x 2 = 12\n3. 15 - 9 = 4"
    claims = split_claims(answer)
    assert kept_answer(answer, claims, [True, True, True]) == answer
    assert kept_answer(answer, claims, [True, False, True]) == "1. 3 + 4 = 7\n3. 15 - 9 = 4"
    assert kept_answer(answer, claims, [False, False, True]) == "3. 15 - 9 = 4"
    assert kept_answer(answer, claims, [False, False, False]) == ""


def test_the_rule_splitter_is_deterministic_and_named() -> None:
    s = RuleSplitter()
    answer = "Paris is in France. It is the capital.\n1) 7 2) 8"
    first = asyncio.run(s.split("q", answer))
    assert first == asyncio.run(s.split("other question", answer)) == split_claims(answer)
    assert s.name == "rules"
