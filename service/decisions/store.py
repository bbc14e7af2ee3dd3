"""The decision log's storage interface: one small ABC, implemented for SQLite
(``sqlite.py``: the embedded default) and PostgreSQL (``postgres.py``: shared by every
replica); ``log.open_store`` picks one from the URL.

The table comes from the one ``COLUMNS`` list in ``log.py``; each dialect only maps its
types and its upsert. A store is used by one writer thread at a time (plus its reads:
``labelled``, and what rebuilds the live monitors), and builds the records of
``records.py`` from its rows.

Durability: SQLite runs WAL with ``synchronous=FULL``; PostgreSQL commits with its default
``synchronous_commit=on`` (the WAL is flushed before COMMIT returns). Either way a write
returns only after the commit is durable, and feedback is acknowledged only after that.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from service.decisions.records import AuditCounts, AuditRead, LabelledDecision, RecentDecision

Row = dict[str, Any]
Label = tuple[str, bool, str]  # (answer id, correct, labeller)


class DecisionStore(ABC):
    shared = False  # True: other replicas write here too (feedback may precede the row)

    def __init__(self, columns: tuple[tuple[str, str], ...], label_columns: tuple[str, ...]):
        self.columns = columns
        self.row_names = tuple(n for n, _ in columns if n not in label_columns)

    @abstractmethod
    def write(self, rows: list[Row], labels: list[Label]) -> list[LabelledDecision | None]:
        """Insert ``rows`` then apply ``labels`` in one committed transaction; per label:
        the label and the decision it labelled (``_label``), or None when the id is
        unknown."""

    @abstractmethod
    def prune(self, cutoff_ts: float) -> int: ...

    @abstractmethod
    def labelled(self) -> list[Row]:
        """Labelled decisions, oldest first, as stored (JSON columns still text)."""

    @abstractmethod
    def audit_counts(self, current_rate: float = 0.0) -> list[AuditCounts]:
        """Every promise's running sums over its audited decisions (decisions, abstentions,
        labelled answered, wrong answered), thinned to the lowest positive audit rate its
        decisions were served at and ``current_rate`` (``records.thinned_counts``:
        a uniform sample even when the rate changed between restarts)."""

    @abstractmethod
    def recent_decisions(self, calibration_id: str, limit: int) -> list[RecentDecision]:
        """The last ``limit`` decisions of one artifact, oldest first (the drift window)."""

    def audit_changes(self, since: str | None) -> AuditRead:
        """A shared store: the audited decisions committed or relabelled since the read
        that returned ``since`` (None: all of them)."""
        raise NotImplementedError(f"{type(self).__name__} is not shared by replicas")

    @abstractmethod
    def close(self) -> None: ...


LABELLED = ("audit", "audit_rate", "decision", "target_risk", "calibration_id", "profile",
            "label")


def _label(cur: Any, ph: str, label: Label, touch: str = "") -> LabelledDecision | None:
    """Label one decision: the label and what it labelled, or None for an unknown id
    (``touch``: more assignments for the UPDATE, e.g. a shared store's change marker)."""
    rid, correct, labeller = label
    row = cur.execute(f"SELECT {', '.join(LABELLED)} FROM decisions WHERE id = {ph}",
                      (rid,)).fetchone()
    if row is None:
        return None
    cur.execute(f"UPDATE decisions SET label = {ph}, label_ts = {ph}, labeller = {ph}{touch} "
                f"WHERE id = {ph}", (int(correct), time.time(), labeller, rid))
    audit, audit_rate, decision, target_risk, calibration_id, profile, previous = row
    return LabelledDecision(rid, bool(audit), audit_rate, decision, target_risk,
                            calibration_id, profile, correct,
                            None if previous is None else bool(previous))


def redact(url: str | Path) -> str:
    """The URL without its password, for logs and errors."""
    text = str(url)
    if "://" in text and "@" in text:
        scheme, rest = text.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return text
