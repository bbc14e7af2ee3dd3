"""Multi-part questions: several labelled questions asked in one request, graded per part.

A multi-part ``Item`` holds its parts (each an ``Item`` with its own reference and
grader). The question numbers them (``1) ...``, ``2) ...``) under one instruction line,
the format the embedded model answers one numbered line per part in. Two generated sets:

* ``ladder-parts``: 2 to 4 arithmetic ladder questions per request, mostly one-digit
  (the model gets ~70% of those right) with some two-digit ones (~3%), so answers mix
  right and wrong parts, which is what a claim-level threshold has to tell apart;
* ``qa-wikidata-parts``: 2 to 4 qa_wikidata completions per request.

Grading (``grade_parts``): each claim of the answer is matched to a part by its number
(``2) ...`` -> part 2); an unnumbered claim, by the part whose question it repeats, else
by its position among the claims. A claim matching no part is wrong; so is a claim whose
part's grader rejects it. The whole answer is correct when every part has a claim and
every claim is correct.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from service.labelled.items import Grader, Item
from service.labelled.ladder import OPS, ladder_item
from service.signals.normalize import squad_normalize

ARITHMETIC_HEADER = "Answer each question on its own line, numbered."
COMPLETION_HEADER = "Complete each sentence with a short answer, one per line, numbered."
PART_RANGE = (2, 4)
PARTS_WEIGHTS = {1: 4, 2: 1}  # digits: four one-digit parts for every two-digit one
GradeOne = Callable[[Item, str], bool]  # one part's grader (``grading.grade``)
Said = Sequence[tuple[str, int | None]]  # an answer's claims: (text, part number)


def multi_item(id_: str, header: str, parts: Sequence[Item], task: str,
               prompts: Sequence[str] | None = None) -> Item:
    """One request asking every part, numbered; ``prompts`` are the parts as asked."""
    asked = prompts or [p.question for p in parts]
    question = "\n".join([header, *(f"{i}) {q}" for i, q in enumerate(asked, start=1))])
    return with_parts(id_, question, parts, task)


def with_parts(id_: str, question: str, parts: Sequence[Item], task: str) -> Item:
    """The multi-part item asking ``question``: its parts' answers joined, graded per part
    (its own grader: the parts' one grader, else ``text``)."""
    graders = {p.grader for p in parts}
    grader: Grader = graders.pop() if len(graders) == 1 else "text"
    return Item(id_, question, "; ".join(p.answer for p in parts), grader, task=task,
                meta={"parts": str(len(parts))}, parts=tuple(parts))


def ladder_parts(n: int, seed: int = 0, weights: dict[int, int] | None = None) -> list[Item]:
    """``n`` distinct multi-part arithmetic requests of 2-4 parts (seeded)."""
    rng, w = random.Random(seed), weights or PARTS_WEIGHTS
    rungs = [(d, op) for d, k in sorted(w.items()) for _ in range(k) for op in OPS]
    out, seen = list[Item](), set[str]()
    for _ in range(100 * n):
        k = rng.randint(*PART_RANGE)
        parts = [ladder_item(j, *rng.choice(rungs), rng) for j in range(k)]
        asked = [p.question.removesuffix(" Answer with the number only.") for p in parts]
        item = multi_item(f"parts-{len(out)}", ARITHMETIC_HEADER, parts, "math", asked)
        if item.question not in seen:
            seen.add(item.question)
            out.append(item)
        if len(out) == n:
            return out
    raise ValueError(f"cannot draw {n} distinct multi-part questions")


def completion_parts(items: Sequence[Item], n: int, seed: int = 0) -> list[Item]:
    """``n`` requests of 2-4 qa_wikidata completions each, drawn without replacement."""
    rng = random.Random(seed)
    pool = rng.sample(list(items), len(items))
    out: list[Item] = []
    while len(out) < n and len(pool) >= PART_RANGE[1]:
        parts = [pool.pop() for _ in range(rng.randint(*PART_RANGE))]
        asked = [p.meta.get("context", p.question) + " ..." for p in parts]
        out.append(multi_item(f"wikidata-parts-{len(out)}", COMPLETION_HEADER, parts,
                              "factual", asked))
    return out


def _stem(part: Item) -> str:
    """What a claim repeats of its part's question: a user row's part ``question``, or a
    completion's context."""
    return squad_normalize(part.meta.get("stem") or part.meta.get("context", ""))


def match_parts(item: Item, claims: Said) -> list[int | None]:
    """The part index (0-based) each claim ``(text, part number)`` answers (None: none)."""
    out: list[int | None] = []
    for pos, (text, number) in enumerate(claims):
        if number is not None:
            out.append(number - 1 if 1 <= number <= len(item.parts) else None)
            continue
        said = f" {squad_normalize(text)} "
        repeats = [j for j, p in enumerate(item.parts) if _stem(p) and f" {_stem(p)} " in said]
        out.append(repeats[0] if repeats else pos if pos < len(item.parts) else None)
    return out


def grade_parts(item: Item, claims: Said,
                grade_one: GradeOne) -> list[bool]:
    """Each claim's label: its part's grader accepts it (no part: wrong)."""
    return [j is not None and grade_one(item.parts[j], text)
            for (text, _), j in zip(claims, match_parts(item, claims), strict=True)]


def whole_correct(item: Item, claims: Said,
                  labels: Sequence[bool]) -> bool:
    """Every part answered by some claim, and every claim correct."""
    covered = {j for j in match_parts(item, claims) if j is not None}
    return bool(claims) and all(labels) and covered == set(range(len(item.parts)))
