"""Print every collected TruthfulQA answer with the grader's verdict, for checking by hand.

Run: .venv/bin/python docs/img/calibration/tqa_handcheck.py [n] [max_stage] [max_tokens]
Writes docs/img/calibration/tqa_grades.json (question, answer, verdict, margin, refs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from service.labelled.datasets import DATA_DIR
from service.labelled.grading import grade_truthfulqa, make_encoder
from service.offline.collection import gather


def main() -> None:
    n, stage, tokens = (sys.argv[1:] + ["24", "3", "24"][len(sys.argv) - 1:])[:3]
    ns = argparse.Namespace(dataset="truthfulqa", n=int(n), seed=0, data_dir=DATA_DIR,
                            server=None, max_tokens=int(tokens), max_stage=int(stage),
                            concurrency=None, cache=None, no_progress=True, timeout=3600.0)
    items, responses, _ = gather(ns)
    encode = make_encoder(items)
    assert encode is not None
    rows = []
    for i, (it, r) in enumerate(zip(items, responses, strict=True)):
        ok, margin = grade_truthfulqa(r["answer"], it.correct_refs, it.incorrect_refs, encode)
        rows.append({"i": i, "question": it.question, "answer": r["answer"], "grader": ok,
                     "margin": round(margin, 3), "best": it.answer,
                     "incorrect": list(it.incorrect_refs[:2])})
        print(f"[{i}] {'OK ' if ok else 'BAD'} {margin:+.2f} Q: {it.question}\n    A: "
              f"{r['answer']!r}\n    best: {it.answer} | wrong: {it.incorrect_refs[:2]}")
    Path("docs/img/calibration/tqa_grades.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
