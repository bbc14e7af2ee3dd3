"""Labelled questions for calibration and evaluation, and how each is graded.

Four sources, one shape (``Item``): GSM8K test, TruthfulQA (the 790-row 2025
file by default), a seeded arithmetic ladder (``ladder.py``; ``ladder-parts`` and
``qa-wikidata-parts`` ask several questions per request, ``parts.py``) and the user's own
JSONL or CSV file (``userdata.py``: answer aliases, file:line errors). Each item
names its grader: ``numeric`` (final number, exact), ``text`` (normalised
containment of any alias) or ``truthfulqa`` (embedding similarity to the correct
vs the incorrect reference answers, see ``grading.py``).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from service.labelled.items import Item
from service.labelled.ladder import arithmetic_ladder, mixed_ladder
from service.labelled.parts import completion_parts, ladder_parts
from service.labelled.userdata import DatasetError, load_csv, load_jsonl

# The named sets ship inside the package (provenance, licenses, checksums: data/README.md).
DATA_DIR = Path(__file__).resolve().parent / "data"
DATASETS = ("ladder", "ladder-mix", "ladder-parts", "qa-wikidata", "qa-wikidata-parts", "gsm8k",
            "truthfulqa", "truthfulqa-2021")
# data/README.md: "Complete the sentence with a short answer: <context> ...",
# graded by normalised containment of the continuation.
WIKIDATA_PROMPT = "Complete the sentence with a short answer: {context} ..."
__all__ = ["DATASETS", "DATA_DIR", "DatasetError", "Item", "load_csv", "load_dataset", "load_jsonl"]


def load_gsm8k(path: Path) -> list[Item]:
    """GSM8K: the reference is the number after ``####``."""
    items = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            row = json.loads(line)
            ref = row["answer"].split("####")[-1].strip().replace(",", "")
            items.append(Item(f"gsm8k-{i}", row["question"], ref, "numeric", task="math"))
    return items


def load_qa_wikidata(path: Path) -> list[Item]:
    """BIG-bench qa_wikidata rows (``context``, ``continuation``) as short factual questions."""
    items = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            row = json.loads(line)
            items.append(Item(f"wikidata-{i}", WIKIDATA_PROMPT.format(context=row["context"]),
                              row["continuation"], "text", task="factual",
                              meta={"relation": relation(row["context"]),
                                    "context": row["context"]}))
    return items


def relation(context: str) -> str:
    """"The country of citizenship of X is" -> "country of citizenship"."""
    words = context.removeprefix("The ").split(" of ")
    return " of ".join(words[:-1]) if len(words) > 1 else words[0]


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


def load_dataset(name: str, data_dir: Path = DATA_DIR, n: int | None = None,
                 seed: int = 0) -> list[Item]:
    """``name``: one of ``DATASETS`` or a .jsonl or .csv path.

    ``n`` draws a seeded random subset (the ladder is generated with ``n`` items).
    """
    if name == "ladder":
        return arithmetic_ladder(n or 400, seed=seed)
    if name == "ladder-mix":
        return mixed_ladder(n or 400, seed=seed)
    if name == "ladder-parts":
        return ladder_parts(n or 400, seed=seed)
    if name == "qa-wikidata-parts":
        return completion_parts(load_qa_wikidata(data_dir / "qa_wikidata" / "dev.jsonl"),
                                n or 400, seed=seed)
    if name == "qa-wikidata":
        items = load_qa_wikidata(data_dir / "qa_wikidata" / "dev.jsonl")
    elif name == "gsm8k":
        items = load_gsm8k(data_dir / "gsm8k" / "test.jsonl")
    elif name == "truthfulqa":
        items = load_truthfulqa(data_dir / "truthfulqa" / "TruthfulQA-2025.csv")
    elif name == "truthfulqa-2021":
        items = load_truthfulqa(data_dir / "truthfulqa" / "TruthfulQA.csv")
    elif name.lower().endswith((".jsonl", ".csv")):
        path = Path(name)
        if not path.is_file():
            raise DatasetError(f"{name}: no such file")
        items = load_csv(path) if name.lower().endswith(".csv") else load_jsonl(path)
    else:
        raise ValueError(f"unknown dataset {name!r}: use one of {DATASETS}, a .jsonl or a "
                         ".csv path")
    if n is not None and n < len(items):
        items = random.Random(seed).sample(items, n)
    return items
