"""Split an answer into claims: list items, enumerated parts and sentences (deterministic).

The rules, in order (docs/claims.md):

1. The answer is read line by line; blank lines separate nothing.
2. A line that starts with a list marker (``1.``, ``1)``, ``(1)``, ``a)``, ``-``, ``*``,
   ``•``) is one claim: the item. A numbered marker gives the claim its ``part`` (the
   number), which multi-part grading and sample support match on.
3. A line whose markers run ``1) ... 2) ... 3) ...`` (consecutive numbers from 1, ``N)``,
   ``(N)`` or ``N.`` followed by a space) is split at each marker: enumerated parts on one
   line (text before ``1)`` is a heading).
4. A line that ends with ``:`` is a heading, not a claim: it stays in the kept answer.
5. Any other line is split into sentences after ``.``, ``!`` or ``?`` followed by a
   space, except after a common abbreviation or a single-letter initial.

A claim's ``span`` is its text in the answer (marker and surrounding space excluded); its
``extent`` runs from its marker to the next claim or heading, so cutting the extents of
dropped claims out of the answer leaves the kept claims with their own markers and layout.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

_MARKER = re.compile(r"\s*(?:\((\d{1,3})\)|(\d{1,3})[.)]|\(?[a-z]\)|[-*•])\s+")
_INLINE = re.compile(r"(?:^|(?<=\s))(?:\((\d{1,2})\)|(\d{1,2})[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_ABBREVIATIONS = frozenset({"e.g.", "i.e.", "mr.", "mrs.", "ms.", "dr.", "st.", "vs.",
                            "etc.", "no.", "approx.", "u.s.", "jr.", "sr.", "prof."})


@dataclass(frozen=True)
class Claim:
    """One claim of an answer: ``answer[start:end] == text``."""

    text: str
    start: int
    end: int
    extent: tuple[int, int]  # what dropping the claim cuts from the answer
    part: int | None = None  # the number of an enumerated part (``2)`` -> 2)


class Splitter(Protocol):
    """Anything that splits an answer into claims located in it (``span`` into the text)."""

    @property
    def name(self) -> str: ...

    async def split(self, question: str, answer: str) -> list[Claim]: ...


@dataclass(frozen=True)
class _Piece:
    start: int  # the extent's start (marker included)
    text_start: int
    text_end: int
    part: int | None
    claim: bool = True


def _number(m: re.Match[str]) -> int | None:
    digits = next((g for g in m.groups() if g), None)
    return int(digits) if digits is not None else None


def _inline_parts(line: str, offset: int) -> list[_Piece] | None:
    """A line of consecutive enumerated parts (``1) a 2) b``), or None."""
    marks = list(_INLINE.finditer(line))
    first = next((i for i, m in enumerate(marks) if _number(m) == 1), None)
    if first is None:
        return None
    chosen = [marks[first]]
    for m in marks[first + 1:]:
        if _number(m) == (_number(chosen[-1]) or 0) + 1:
            chosen.append(m)
    if len(chosen) < 2:
        return None
    ends = [m.start() for m in chosen[1:]] + [len(line)]
    head = line[:chosen[0].start()]
    lead = [_Piece(offset, offset, offset + len(head.rstrip()), None, claim=False)
            ] if head.strip() else []
    return lead + [_Piece(offset + m.start(), offset + m.end(), offset + end, _number(m))
                   for m, end in zip(chosen, ends, strict=True)]


def _abbreviated(before: str) -> bool:
    last = before.rsplit(None, 1)[-1].lower() if before.strip() else ""
    return last in _ABBREVIATIONS or re.fullmatch(r"[a-z]\.", last) is not None


def _sentences(line: str, offset: int) -> list[_Piece]:
    starts = [0] + [m.end() for m in _SENTENCE_END.finditer(line)
                    if not _abbreviated(line[:m.start()])]
    ends = starts[1:] + [len(line)]
    return [_Piece(offset + s, offset + s, offset + e, None) for s, e in zip(starts, ends,
                                                                             strict=True)]


def _pieces(answer: str) -> list[_Piece]:
    out: list[_Piece] = []
    offset = 0
    for line in answer.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if body.strip():
            lead = len(body) - len(body.lstrip())
            inline = _inline_parts(body[lead:], offset + lead)
            marker = _MARKER.match(body)
            if inline is not None:
                out.extend(inline)
            elif marker is not None and body[marker.end():].strip():
                out.append(_Piece(offset, offset + marker.end(), offset + len(body),
                                  _number(marker)))
            elif body.rstrip().endswith(":"):
                out.append(_Piece(offset, offset + lead, offset + len(body), None, claim=False))
            else:
                out.extend(_sentences(body[lead:], offset + lead))
        offset += len(line)
    return out


def split_claims(answer: str) -> list[Claim]:
    """The answer's claims by the rules of the module docstring (deterministic)."""
    pieces = _pieces(answer)
    claims = []
    for i, p in enumerate(pieces):
        if not p.claim:
            continue
        raw = answer[p.text_start:p.text_end]
        start = p.text_start + len(raw) - len(raw.lstrip())
        end = p.text_start + len(raw.rstrip())
        if end <= start:
            continue
        extent_end = pieces[i + 1].start if i + 1 < len(pieces) else len(answer)
        claims.append(Claim(answer[start:end], start, end, (p.start, extent_end), p.part))
    return claims


def kept_answer(answer: str, claims: Sequence[Claim], kept: Sequence[bool]) -> str:
    """The answer with every dropped claim's extent cut out ("" when no claim is kept)."""
    if not any(kept):
        return ""
    out, pos = [], 0
    for claim, keep in zip(claims, kept, strict=True):
        if not keep:
            out.append(answer[pos:claim.extent[0]])
            pos = claim.extent[1]
    out.append(answer[pos:])
    return "".join(out).strip()


class RuleSplitter:
    """The deterministic splitter (``split_claims``)."""

    name = "rules"

    async def split(self, question: str, answer: str) -> list[Claim]:
        return split_claims(answer)
