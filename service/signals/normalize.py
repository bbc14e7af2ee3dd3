"""Answer normalisation for clustering: math -> final number, short text -> normalised text."""

from __future__ import annotations

import re
import string

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_MATHY = re.compile(
    r"(\d\s*[-+*/x×÷^]\s*\d)|\b(how many|how much|calculate|compute|sum of|product of|"
    r"difference|total|what is \d)",
    re.IGNORECASE,
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def resolve_task(task: str, question: str) -> str:
    """``auto`` becomes ``math`` for arithmetic-looking questions, else ``factual``."""
    if task != "auto":
        return task
    return "math" if _MATHY.search(question) and re.search(r"\d", question) else "factual"


def final_number(text: str) -> str | None:
    """The last number in ``text`` ("3 + 8 = 11" -> "11"), canonical: no commas, no ".0"."""
    hits = _NUMBER.findall(text.replace("−", "-"))
    if not hits:
        return None
    raw = hits[-1].replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    if value.is_integer():
        return str(int(value))
    return f"{value:.6g}"


def normalize_text(text: str) -> str:
    """Lower-case, first sentence, no punctuation, no articles, single spaces."""
    t = text.strip().lower()
    first = re.split(r"(?<=[.!?])\s+|\n", t, maxsplit=1)[0]
    first = first.translate(str.maketrans("", "", string.punctuation))
    first = _ARTICLES.sub(" ", first)
    return " ".join(first.split())


def normalize_answer(text: str, task: str) -> str:
    if task == "math":
        num = final_number(text)
        return num if num is not None else normalize_text(text)
    return normalize_text(text)
