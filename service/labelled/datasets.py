"""Labelled questions for calibration and evaluation, and how each is graded.

Four sources, one shape (``Item``): GSM8K test, TruthfulQA (the 790-row 2025
file by default), a seeded arithmetic ladder (``ladder.py``) and any JSONL file
with ``question`` and ``answer`` fields. Each item names its grader: ``numeric``
(final number, exact) or ``truthfulqa`` (embedding similarity to the correct vs
the incorrect reference answers, see ``grading.py``).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from service.labelled.items import Grader, Item
from service.labelled.ladder import arithmetic_ladder
from service.signals.normalize import final_number

DATASETS = ("ladder", "gsm8k", "truthfulqa", "truthfulqa-2021")
__all__ = ["DATASETS", "Item", "load_dataset"]


def load_gsm8k(path: Path) -> list[Item]:
    """GSM8K: the reference is the number after ``####``."""
    items = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            row = json.loads(line)
            ref = row["answer"].split("####")[-1].strip().replace(",", "")
            items.append(Item(f"gsm8k-{i}", row["question"], ref, "numeric", task="math"))
    return items


def _split_refs(cell: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in cell.split(";") if r.strip())


def load_truthfulqa(path: Path) -> list[Item]:
    """TruthfulQA CSV (BOM-tolerant); "I have no comment." counts as correct, as upstream."""
    items = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            correct = _split_refs(row["Correct Answers"]) + ("I have no comment.",)
            items.append(Item(
                f"tqa-{i}", row["Question"], row["Best Answer"], "truthfulqa", task="factual",
                correct_refs=correct, incorrect_refs=_split_refs(row["Incorrect Answers"]),
                meta={"category": row.get("Category", ""), "type": row.get("Type", "")},
            ))
    return items


def load_jsonl(path: Path) -> list[Item]:
    """User data: one JSON object per line with ``question`` and ``answer``.

    Numeric answers are graded numerically; anything else by normalised text match.
    """
    items = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row, dict) or "question" not in row or "answer" not in row:
                raise ValueError(f"{path}:{i + 1}: need an object with 'question' and 'answer'")
            ans = str(row["answer"])
            grader: Grader = "numeric" if final_number(ans) == ans.strip() else "text"
            items.append(Item(str(row.get("id", f"{path.stem}-{i}")), str(row["question"]), ans,
                              grader, task=str(row.get("task", "auto"))))
    return items


def load_dataset(name: str, data_dir: Path, n: int | None = None, seed: int = 0) -> list[Item]:
    """``name``: ladder | gsm8k | truthfulqa | truthfulqa-2021 | a path to a .jsonl file.

    ``n`` draws a seeded random subset (the ladder is generated with ``n`` items).
    """
    if name == "ladder":
        return arithmetic_ladder(n or 400, seed=seed)
    if name == "gsm8k":
        items = load_gsm8k(data_dir / "gsm8k" / "test.jsonl")
    elif name == "truthfulqa":
        items = load_truthfulqa(data_dir / "truthfulqa" / "TruthfulQA-2025.csv")
    elif name == "truthfulqa-2021":
        items = load_truthfulqa(data_dir / "truthfulqa" / "TruthfulQA.csv")
    elif name.endswith(".jsonl") and Path(name).is_file():
        items = load_jsonl(Path(name))
    else:
        raise ValueError(f"unknown dataset {name!r}: use one of {DATASETS} or a .jsonl path")
    if n is not None and n < len(items):
        items = random.Random(seed).sample(items, n)
    return items
