"""``candor eval``: held-out metrics of a calibration artifact, with an HTML report.

    candor eval --artifact runs/calibration/ladder.json --dataset ladder --n 300 --out DIR

The questions, cache and split are the calibration run's (same flags), so the
held-out part is exactly the one the artifact never saw.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _eval(args: argparse.Namespace) -> int:
    from service.calibration.artifact import load_artifact
    from service.calibration.cli import gather
    from service.calibration.records import to_records
    from service.eval.grading import make_encoder
    from service.eval.report import evaluate, write_report

    items, responses = gather(args)
    records = to_records(items, responses, make_encoder(items))
    model = load_artifact(args.artifact) if args.artifact else None
    summary = evaluate(records, model, split_seed=args.split_seed, holdout=args.holdout)
    out = args.out or Path("runs") / "eval" / Path(args.dataset).stem
    write_report(summary, records, model, out, args.split_seed, args.holdout)
    print(json.dumps({k: summary[k] for k in ("n", "accuracy", "auroc")}, indent=1))
    print(f"report: {out / 'report.html'}")
    return 0


def add_eval_parser(sub: Any) -> None:
    from service.calibration.cli import add_common

    p = sub.add_parser("eval", help="held-out metrics and an HTML report")
    add_common(p)
    p.add_argument("--artifact", type=Path, default=None, help="calibration artifact")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--holdout", type=float, default=0.3)
    p.add_argument("--out", type=Path, default=None, help="report directory")
    p.set_defaults(func=_eval)
