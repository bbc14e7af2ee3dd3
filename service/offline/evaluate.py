"""``candor eval``: held-out metrics of a calibration artifact, with an HTML report.

    candor eval --artifact runs/calibration/ladder.json --dataset ladder --n 300 --out DIR

With the calibration run's flags the questions and cache are the same; the artifact
stores the keys of its fit, test and held-out questions, so evaluation never re-splits:
it runs on the held-out questions (and any new ones) and fails when every question
given was used for fitting.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from service.bootstrap import Starter, load_engine
from service.offline.collection import add_common, gather


def run_eval(args: argparse.Namespace, start: Starter = load_engine) -> int:
    """``candor eval``; ``start`` starts the in-process engine when there is no
    ``--server`` (``service.bootstrap.load_engine``; tests pass a fake)."""
    from service.calibration.artifact import load_artifact
    from service.calibration.records import to_records
    from service.errors import CalibrationError
    from service.eval.report import evaluate, write_report
    from service.labelled.grading import make_encoder

    try:
        model = load_artifact(args.artifact) if args.artifact else None
    except CalibrationError as exc:
        raise SystemExit(f"candor: {exc.message}") from exc
    items, responses, _ = gather(args, start)
    records = to_records(items, responses, make_encoder(items))
    try:
        summary = evaluate(records, model)
    except ValueError as exc:
        raise SystemExit(f"candor: {exc}") from exc
    out = args.out or Path("runs") / "eval" / Path(args.dataset).stem
    write_report(summary, records, model, out)
    print(json.dumps({k: summary[k] for k in ("n", "excluded_fitted", "accuracy", "auroc")},
                     indent=1))
    print(f"report: {out / 'report.html'}")
    return 0


def add_eval_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="held-out metrics and an HTML report")
    add_common(p)
    p.add_argument("--artifact", type=Path, default=None,
                   help="calibration artifact: judged only on questions it never fitted on")
    p.add_argument("--out", type=Path, default=None, help="report directory")
    p.set_defaults(func=run_eval)
