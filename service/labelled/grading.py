"""Graders: is a model's answer correct against the reference?

``numeric``: the final number of the answer equals the reference (commas, ``$``,
units and trailing text are ignored; ``#### x``, ``answer is x`` and ``= x`` are
preferred over other numbers). ``truthfulqa``: the answer is embedded and
compared with every correct and incorrect reference; it is correct when its best
match among the correct references beats its best match among the incorrect
ones (the grader's agreement with hand labels is in docs/results.md).
``text``: SQuAD-normalised (lower case, no punctuation or articles) answer equals or
contains any accepted alias; with aliases that are all numbers the item is ``numeric``
and any alias's number counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from service.claims.split import split_claims
from service.labelled.items import Item
from service.labelled.parts import Said, grade_parts, whole_correct
from service.signals.normalize import final_number, squad_normalize


def grade_numeric(answer: str, reference: str) -> bool:
    got, want = final_number(answer), final_number(reference)
    if got is None or want is None:
        return False
    try:
        return abs(float(got) - float(want)) < 1e-6
    except ValueError:
        return got == want


def grade_text(answer: str, reference: str | Sequence[str]) -> bool:
    """Correct when the normalised answer equals or contains (on word boundaries) the
    normalised form of any accepted alias."""
    refs = [reference] if isinstance(reference, str) else list(reference)
    a = f" {squad_normalize(answer)} "
    return any(r and f" {r} " in a for r in map(squad_normalize, refs))


def grade_numeric_any(answer: str, references: Sequence[str]) -> bool:
    return any(grade_numeric(answer, r) for r in references)


Encode = Callable[[list[str]], np.ndarray]


def grade_truthfulqa(answer: str, correct: Sequence[str], incorrect: Sequence[str],
                     encode: Encode) -> tuple[bool, float]:
    """(correct?, margin): best cosine similarity to a correct minus to an incorrect ref."""
    vecs = encode([answer, *correct, *incorrect])
    sims = vecs[1:] @ vecs[0]
    best_ok = float(np.max(sims[: len(correct)]))
    best_bad = float(np.max(sims[len(correct):])) if incorrect else -1.0
    margin = best_ok - best_bad
    return margin > 0, margin


def grade(item: Item, answer: str, encode: Encode | None = None) -> bool:
    """Grade one answer with the item's grader (TruthfulQA needs an ``encode``); a
    multi-part item's answer is correct when every part is (``parts.py``)."""
    if item.parts:
        said = [(c.text, c.part) for c in split_claims(answer)]
        return whole_correct(item, said, grade_claims(item, said, encode))
    refs = item.correct_refs or (item.answer,)
    if item.grader == "numeric":
        return grade_numeric_any(answer, refs)
    if item.grader == "text":
        return grade_text(answer, refs)
    if encode is None:
        raise ValueError("the truthfulqa grader needs an embedding function")
    return grade_truthfulqa(answer, item.correct_refs, item.incorrect_refs, encode)[0]


def make_encoder(items: Sequence[Item]) -> Encode | None:
    """The embedding function the TruthfulQA grader needs (None when no item needs it)."""
    if not any(it.grader == "truthfulqa" for it in items):
        return None
    from service.signals.embedder import Embedder

    return Embedder().encode_sync


def grade_claims(item: Item, claims: Said, encode: Encode | None = None) -> list[bool]:
    """Each claim's label against the part it answers (``parts.grade_parts``)."""
    return grade_parts(item, claims, lambda part, text: grade(part, text, encode))
