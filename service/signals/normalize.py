"""Answer normalisation for clustering: math -> final number, short text -> normalised text.

The one home of the text rules the graders share (``service/labelled/``, which may import
``signals/``, never the reverse): the number grammar (finding a number in an answer,
``final_number``; telling a plain-number alias, ``is_plain_number``) and SQuAD's text
normalisation (``squad_normalize``: lower case, no punctuation, no articles).
"""

from __future__ import annotations

import re
import string

# The number grammar, in its two forms (each as its caller has always read numbers):
#
# - ``NUMBER`` finds numbers in free text: one extractor for clustering (signals) and
#   grading, so "the same answer" and "the right answer" are judged on the same number.
#   Loose: commas anywhere after the first digit ("1,2,3" reads 123), a space after "$",
#   a sign only as "-" (``final_number`` maps the Unicode minus first; "+5" reads 5), and a
#   trailing "%" left outside.
# - ``PLAIN_NUMBER`` is a whole string that is only a number: a dataset alias that makes its
#   item ``numeric`` (``is_plain_number``). Strict: commas only as thousands separators
#   ("1,000", never "1,00"), no space after "$", "+" and the Unicode minus taken as signs,
#   and an optional trailing "%" ("7%").
#
# Both read digits with an optional fraction, or a bare fraction (".5").
NUMBER = r"-?\$?\s?(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
PLAIN_NUMBER = re.compile(r"[-+\u2212]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?%?")
# "#### x", "answer is x" and "= x" win over other numbers, else the last number
# ("3 + 8 = 11" -> "11").
_PREFERRED = (
    re.compile(rf"####\s*({NUMBER})"),
    re.compile(rf"answer is[:\s]*({NUMBER})", re.IGNORECASE),
    re.compile(rf"=\s*({NUMBER})"),
)
_ANY = re.compile(NUMBER)
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


def is_plain_number(text: str) -> bool:
    """Whether ``text`` (stripped) is only a number (``PLAIN_NUMBER``, with a digit)."""
    s = text.strip()
    return bool(s) and any(ch.isdigit() for ch in s) and PLAIN_NUMBER.fullmatch(s) is not None


_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _squad(lowered: str) -> str:
    """No punctuation, no articles, single spaces (of lower-cased text)."""
    return " ".join(_ARTICLES.sub(" ", lowered.translate(_NO_PUNCTUATION)).split())


def squad_normalize(text: str) -> str:
    """SQuAD's ``normalize_answer``: lower case, no punctuation, no articles, one space."""
    return _squad(text.lower())


def normalize_text(text: str) -> str:
    """Lower-case, first sentence, no punctuation, no articles, single spaces (SQuAD's
    normalisation of the first sentence)."""
    t = text.strip().lower()
    return _squad(re.split(r"(?<=[.!?])\s+|\n", t, maxsplit=1)[0])


def normalize_answer(text: str, task: str) -> str:
    if task == "math":
        num = final_number(text)
        return num if num is not None else normalize_text(text)
    return normalize_text(text)
