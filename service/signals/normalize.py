"""Answer normalisation for clustering: math -> final number, short text -> normalised text."""

from __future__ import annotations

import re
import string

# One number extractor for clustering (signals) and grading (eval), so "the same answer"
# and "the right answer" are judged on the same number: "#### x", "answer is x" and
# "= x" win over other numbers, else the last number ("3 + 8 = 11" -> "11").
_NUM = r"-?\$?\s?(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
_PREFERRED = (
    re.compile(rf"####\s*({_NUM})"),
    re.compile(rf"answer is[:\s]*({_NUM})", re.IGNORECASE),
    re.compile(rf"=\s*({_NUM})"),
)
_ANY = re.compile(_NUM)
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


def _canonical(num: str) -> str:
    s = num.replace(",", "").replace("$", "").replace(" ", "")
    if s.startswith(("-.", ".")):
        s = s.replace(".", "0.", 1)
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def final_number(text: str) -> str | None:
    """The answer's number as a canonical string (no commas, ``$`` or ".0"), or None."""
    t = text.replace("\u2212", "-")  # Unicode minus sign
    for pat in _PREFERRED:
        found = pat.findall(t)
        if found:
            return _canonical(found[-1])
    found = _ANY.findall(t)
    return _canonical(found[-1]) if found else None


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
