"""One labelled question (``Item``) and the graders it can name."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

Grader = Literal["numeric", "truthfulqa", "text"]


@dataclass(frozen=True)
class Item:
    """One labelled question. ``answer`` is the reference; refs are for TruthfulQA."""

    id: str
    question: str
    answer: str
    grader: Grader
    task: str = "auto"
    correct_refs: tuple[str, ...] = ()
    incorrect_refs: tuple[str, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)
    # A multi-part question: each part is graded against its own reference (claims mode,
    # ``grading.grade_parts``); the whole answer is correct when every part is.
    parts: tuple[Item, ...] = ()

    @property
    def key(self) -> str:
        """Content id (question + task): the same question has the same key in every run,
        whatever its position or seed (artifacts store these for their splits)."""
        raw = f"{self.task}\x1f{self.question}"
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]
