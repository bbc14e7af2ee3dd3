"""Labelled cascade runs: one ``Record`` per question, built from a ``/v1/answer`` response.

A record keeps what the offline replay needs: which stages ran, which were
informative, every raw signal, per-stage cost, and whether the greedy answer (the
one the server returns) is correct by the dataset's grader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.calibration.features import feature_of_signal
from service.labelled.grading import Encode, grade, grade_claims
from service.labelled.items import Item
from service.labelled.parts import whole_correct
from service.vocab import N_STAGES


@dataclass(frozen=True)
class ClaimRecord:
    """One claim of a labelled answer: its signals (``ClaimSignals.features``) and label."""

    features: dict[str, float]
    correct: bool


@dataclass
class Record:
    id: str
    correct: bool
    answer: str
    signals: dict[str, float]
    ran: list[bool]
    informative: list[bool]
    tokens: list[int] = field(default_factory=lambda: [0] * N_STAGES)
    ms: list[float] = field(default_factory=lambda: [0.0] * N_STAGES)
    meta: dict[str, str] = field(default_factory=dict)
    key: str = ""  # the item's content key (``Item.key``); the split keys store these
    question: str = ""  # the question as asked (the scope test is fitted on these)
    claims: list[ClaimRecord] | None = None  # claims mode: each claim, labelled per part

    def __post_init__(self) -> None:
        if not self.key:
            self.key = self.id

    def features(self, stage: int) -> dict[str, float]:
        """The runner's cumulative features after ``stage`` (signals of stages <= stage)."""
        out = {}
        for name, v in self.signals.items():
            k = feature_of_signal(name)
            if k is not None and k <= stage and self.ran[k]:
                out[name] = v
        return out

    @property
    def empty(self) -> bool:
        return self.signals.get("n_tokens", 1.0) == 0


def _numbers(values: Mapping[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (values or {}).items()
            if isinstance(v, int | float | bool) and v is not None}


def from_response(item: Item, resp: Mapping[str, Any], correct: bool,
                  claims: list[ClaimRecord] | None = None) -> Record:
    ran, informative = [False] * N_STAGES, [False] * N_STAGES
    tokens, ms = [0] * N_STAGES, [0.0] * N_STAGES
    for st in resp.get("stages", []):
        k = int(st["stage"])
        ran[k], informative[k] = True, bool(st.get("informative", True))
        tokens[k], ms[k] = int(st.get("tokens", 0)), float(st.get("ms", 0.0))
    return Record(item.id, correct, str(resp.get("answer", "")), _numbers(resp.get("signals")),
                  ran, informative, tokens, ms, dict(item.meta), item.key, item.question,
                  claims)


def graded(item: Item, resp: Mapping[str, Any], encode: Encode | None) -> Record:
    """One response as a record: a multi-part item's claims (claims mode) are each graded
    against their part, and the answer is correct when every part is (``parts.py``)."""
    report = resp.get("claims")
    if not item.parts or not isinstance(report, Mapping):
        return from_response(item, resp, grade(item, str(resp.get("answer", "")), encode))
    items = list(report.get("items") or [])
    said = [(str(c.get("text", "")), c.get("part")) for c in items]
    labels = grade_claims(item, said, encode)
    claims = [ClaimRecord(_numbers(c.get("signals")), ok)
              for c, ok in zip(items, labels, strict=True)]
    return from_response(item, resp, whole_correct(item, said, labels), claims)


def to_records(items: Sequence[Item], responses: Sequence[Mapping[str, Any]],
               encode: Encode | None) -> list[Record]:
    """Grade every response's answer and keep its signals."""
    if len(items) != len(responses):
        raise ValueError("one response per item is needed")
    return [graded(it, r, encode) for it, r in zip(items, responses, strict=True)]
