"""A seeded arithmetic ladder: 1- to 4-digit +, - and x questions.

Difficulty rises with the number of digits, from what a 135M model gets right
(one-digit sums) to what it gets wrong (four-digit products), so a calibration
run on a few hundred items sees both outcomes and finishes quickly: the answers
are a few tokens long.
"""

from __future__ import annotations

import random

from service.labelled.items import Item

OPS = ("+", "-", "*")
RETRIES = 50
_WORD = {"+": "plus", "-": "minus", "*": "times"}


def ladder_item(i: int, digits: int, op: str, rng: random.Random) -> Item:
    lo, hi = (0 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    if op == "-" and b > a:
        a, b = b, a
    value = a + b if op == "+" else a - b if op == "-" else a * b
    sym = "x" if op == "*" else op
    question = f"What is {a} {sym} {b}? Answer with the number only."
    return Item(f"ladder-{i}", question, str(value), "numeric", task="math",
                meta={"digits": str(digits), "op": _WORD[op]})


def unique_ladder(n: int, rungs: list[tuple[int, str]], seed: int) -> list[Item]:
    """``n`` distinct questions, cycling over ``rungs`` (seeded). A draw that repeats an
    earlier question is drawn again (up to ``RETRIES`` times), so a rung whose questions
    run out (there are 55 one-digit subtractions) gives way to the next: every question
    is one item, which is what the artifact's split keys and ``candor eval``'s "never on
    fitted questions" rely on."""
    if n < 1:
        raise ValueError("n must be >= 1")
    rng, out, seen = random.Random(seed), list[Item](), set[str]()
    for i in range(100 * n):
        for _ in range(RETRIES):
            item = ladder_item(len(out), *rungs[i % len(rungs)], rng)
            if item.question not in seen:
                seen.add(item.question)
                out.append(item)
                break
        if len(out) == n:
            return out
    raise ValueError(f"cannot draw {n} distinct ladder questions from these rungs")


def arithmetic_ladder(n: int, seed: int = 0, max_digits: int = 4) -> list[Item]:
    """``n`` distinct questions cycling over (digits, op) rungs; the same seed gives the
    same list."""
    return unique_ladder(n, [(d, op) for d in range(1, max_digits + 1) for op in OPS], seed)


# The ``ladder-mix`` dataset: one-digit questions weighted 8:2:1:1 against 2-4 digits.
# There are only 255 distinct one-digit questions (the model gets ~70% right); they run
# out first, and the rest (~0-5% right) fill up: 450 items hold every one-digit question
# and sit near 40% correct, where the signals have both outcomes to tell apart and the
# hard tail teaches the maps to abstain.
MIX_WEIGHTS = {1: 8, 2: 2, 3: 1, 4: 1}


def mixed_ladder(n: int, seed: int = 0, weights: dict[int, int] | None = None) -> list[Item]:
    """``n`` distinct questions whose digit counts follow ``weights`` until a rung runs out
    of distinct questions (rung order cycles, seeded)."""
    w = weights or MIX_WEIGHTS
    return unique_ladder(n, [(d, op) for d, k in sorted(w.items()) for _ in range(k)
                             for op in OPS], seed)
