"""The labelled data users bring: JSONL (NQ-open, TriviaQA, WebQuestions style) and CSV.

JSONL: one object per line with ``question`` and ``answer`` and/or ``answers``; each is a
string, a number, a list of accepted aliases (all aliases of both fields count), or
TriviaQA's object (``value`` and ``aliases``).
Optional ``id`` and ``task``. A multi-part row has ``parts`` instead of ``answer``: a
list with one reference per part (an answer as above, or ``{"answer": ..., "question":
...}``), each part graded on its own claims (claims mode, ``parts.py``). CSV: a header
with ``question`` and ``answer`` (or ``answers``) columns; a cell holds one answer or a
JSON list of aliases.

An item is graded ``numeric`` when every alias is a plain number
(``signals/normalize.py``: ``is_plain_number``), else ``text``
(SQuAD-normalised containment of any alias, see ``grading.py``). A malformed row fails
with ``file:line: what is wrong`` (``DatasetError``, a ``ValueError``), never a traceback.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from service.labelled.items import Grader, Item
from service.labelled.parts import with_parts
from service.signals.normalize import is_plain_number
from service.vocab import TASKS


class DatasetError(ValueError):
    """A dataset file that cannot be read; the message starts with ``file:line``."""


def _aliases(value: Any, field: str, where: str) -> list[str]:
    if isinstance(value, dict):  # TriviaQA: {"value": ..., "aliases": [...], ...}
        if "value" not in value and "aliases" not in value:
            raise DatasetError(f"{where}: an object {field!r} needs 'value' or 'aliases' (the "
                               f"TriviaQA shape), got keys {', '.join(sorted(map(str, value)))}")
        value = list(dict.fromkeys(v for v in [value.get("value"), *(value.get("aliases") or [])]
                                   if v not in (None, "")))
    if isinstance(value, bool) or value is None:
        raise DatasetError(f"{where}: {field!r} must be a string, a number or a list of them, "
                           f"not {json.dumps(value)}")
    if isinstance(value, str | int | float):
        value = [value]
    if not isinstance(value, list):
        raise DatasetError(f"{where}: {field!r} must be a string, a number or a list of them, "
                           f"not a {type(value).__name__}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise DatasetError(f"{where}: every alias in {field!r} must be a string or a "
                               f"number, got {json.dumps(v)}")
        if str(v).strip():
            out.append(str(v).strip())
    return out


def row_to_item(row: Any, where: str, default_id: str) -> Item:
    """One JSON object (or CSV row) as an ``Item``; ``where`` is ``file:line``."""
    if not isinstance(row, dict):
        raise DatasetError(f"{where}: need a JSON object, got {type(row).__name__}")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(f"{where}: need a non-empty string 'question' (keys: "
                           f"{', '.join(sorted(map(str, row))) or 'none'})")
    if row.get("parts") not in (None, ""):
        return _multi_part(row, question.strip(), where, default_id)
    if row.get("answer") in (None, "") and row.get("answers") in (None, ""):
        raise DatasetError(f"{where}: need 'answer' or 'answers' (a string or a list of "
                           "accepted aliases)")
    aliases: list[str] = []
    for field in ("answer", "answers"):
        if row.get(field) not in (None, ""):
            aliases += [a for a in _aliases(row[field], field, where) if a not in aliases]
    if not aliases:
        raise DatasetError(f"{where}: every answer alias is empty")
    grader: Grader = "numeric" if all(is_plain_number(a) for a in aliases) else "text"
    return Item(str(row.get("id") or default_id), question.strip(), aliases[0], grader,
                task=_task(row, where), correct_refs=tuple(aliases))


def _task(row: dict[str, Any], where: str) -> str:
    task = str(row.get("task") or "auto")
    if task not in TASKS:
        raise DatasetError(f"{where}: task must be one of {', '.join(TASKS)}, not {task!r}")
    return task


def _multi_part(row: dict[str, Any], question: str, where: str, default_id: str) -> Item:
    """A multi-part row: ``parts`` lists each part's reference (an answer as above, or an
    object with ``answer``/``answers`` and optionally the part's ``question``, which an
    unnumbered claim that repeats it is matched by); graded per part (``parts.py``)."""
    raw = row["parts"]
    if not isinstance(raw, list) or not raw:
        raise DatasetError(f"{where}: 'parts' must be a non-empty list, one reference per "
                           f"part, not {json.dumps(raw)[:80]}")
    if row.get("answer") not in (None, "") or row.get("answers") not in (None, ""):
        raise DatasetError(f"{where}: a row with 'parts' takes each part's answer there, not "
                           "in 'answer'/'answers'")
    item_id, task, parts = str(row.get("id") or default_id), _task(row, where), []
    for k, part in enumerate(raw, start=1):
        at = f"{where}: part {k}"
        if isinstance(part, dict) and not ("value" in part or "aliases" in part):
            stem = part.get("question")
            if stem is not None and not isinstance(stem, str):
                raise DatasetError(f"{at}: 'question' must be a string")
            body = {"question": stem or f"part {k}", "answer": part.get("answer"),
                    "answers": part.get("answers"), "task": task}
        else:
            body, stem = {"question": f"part {k}", "answer": part, "task": task}, None
        one = row_to_item(body, at, f"{item_id}-{k}")
        parts.append(replace(one, meta={"stem": stem} if stem else {}))
    return with_parts(item_id, question, parts, task)


def load_jsonl(path: Path) -> list[Item]:
    items = []
    try:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{i}: not valid JSON ({exc.msg} at column "
                                       f"{exc.colno})") from None
                items.append(row_to_item(row, f"{path}:{i}", f"{path.stem}-{i - 1}"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return _nonempty(items, path)


def _cell(value: str) -> Any:
    v = value.strip()
    if v.startswith("["):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return v
    return v


def load_csv(path: Path) -> list[Item]:
    """CSV with a header row naming ``question`` and ``answer``/``answers`` (BOM-tolerant)."""
    items: list[Item] = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            cols = {c.strip().lower(): c for c in reader.fieldnames or [] if c}
            if "question" not in cols or not ({"answer", "answers"} & cols.keys()):
                raise DatasetError(f"{path}:1: need a header with 'question' and 'answer' "
                                   f"columns, got {', '.join(cols) or 'none'}")
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise DatasetError(f"{path}:{line}: more cells than header columns")
                clean = {k: _cell(row[orig] or "") for k, orig in cols.items()}
                items.append(row_to_item(clean, f"{path}:{line}", f"{path.stem}-{len(items)}"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: not valid CSV ({exc})") from None
    return _nonempty(items, path)


def _nonempty(items: list[Item], path: Path) -> list[Item]:
    if not items:
        raise DatasetError(f"{path}: no questions in the file")
    return items
