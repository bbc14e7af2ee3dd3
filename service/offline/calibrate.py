"""``candor calibrate``: collect labelled cascade runs, fit, pick thresholds, write the artifact.

    candor calibrate --dataset ladder --n 300 --split-seed 0 [--server URL] [--out PATH]

Without ``--server`` the questions run in large batches through the server's own
cascade on an in-process engine (``batch.py``, started by ``service.bootstrap``), with
exactly the serving settings of this environment; with ``--server`` over HTTP, with that
server's settings (its report at ``GET /v1/calibration``). The artifact pins them.
Responses are cached in ``--cache`` (JSONL, keyed by question, request settings and
serving fingerprint), so a rerun only asks what is missing (``collection.py``). With
``--from-log`` the labelled decisions of the decision log are calibrated instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.audit import common_rate, kept
from service.bootstrap import Starter, load_engine
from service.calibration.claim_spec import DEFAULT_CLAIM_ALPHA
from service.calibration.pinning import ServingSettings
from service.calibration.records import Record, from_response, to_records
from service.calibration.scope import COMPONENTS, DEFAULT_LEVEL
from service.calibration.thresholds import DEFAULT_ALPHAS
from service.labelled.items import Item
from service.offline.collection import add_common, gather

if TYPE_CHECKING:
    from service.calibration.artifact import Labels
    from service.calibration.scope import Embed

log = logging.getLogger("candor.calibrate")


def thinned(audited: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Audited entries thinned to their lowest audit rate (``service/audit.py``): a uniform
    sample even when the server's rate changed between restarts."""
    common = common_rate(e.get("audit_rate") for e in audited)
    keep = [e for e in audited if kept(e["id"], e.get("audit_rate"), common)]
    if len(keep) < len(audited):
        log.info("audit rates differ between decisions: %d of %d audited labels kept, "
                 "a uniform sample at rate %g", len(keep), len(audited), common)
    return keep


def from_log(path: Path | str) -> tuple[list[Record], ServingSettings, Labels]:
    """Labelled decisions of the decision log (``POST /v1/feedback`` labels), from a SQLite
    path or a ``postgresql://`` URL.

    Audited decisions (a uniform random share of all decisions, ``CANDOR_AUDIT_RATE``)
    ran every stage for the record, so their labels are an unbiased sample and the replay
    is exact: they alone are used, with a guarantee. Without any, the other labels give
    maps but no guarantee (``labels: self-selected``). Rows served with other settings
    than the most common ones are left out and counted.
    """
    from service.decisions.table import labelled_entries

    try:
        entries = labelled_entries(path)
    except Exception as exc:  # noqa: BLE001 - sqlite3 errors, a missing file
        raise SystemExit(f"candor: cannot read the decision log {path}: {exc}") from exc
    audited = thinned([e for e in entries if e["audit"]])
    labels: Labels = "audit" if audited else "self-selected"
    rows = audited or entries
    if not rows:
        raise SystemExit(f"candor: no labelled decisions in {path}")
    groups = Counter(e.get("serving") or "" for e in rows)
    serving_json, count = groups.most_common(1)[0]
    if not serving_json:
        raise SystemExit(f"candor: the labelled decisions in {path} carry no serving settings "
                         "(logged by an older Candor); label decisions logged by this version")
    if count < len(rows):
        log.warning("%d labelled decisions were served with other settings; left out",
                    len(rows) - count)
    if labels == "self-selected":
        log.warning("no audited decisions are labelled: the %d labels were chosen by people, "
                    "not sampled at random, so the artifact gets maps but no guarantee "
                    "(set CANDOR_AUDIT_RATE and label the audited decisions)", count)
    records = [from_response(Item(e["id"], e.get("question") or "", "", "numeric"),
                             {"answer": e.get("answer") or "", "stages": e["stages"],
                              "signals": e["signals"]}, bool(e["correct"]))
               for e in rows if (e.get("serving") or "") == serving_json]
    return records, ServingSettings.model_validate_json(serving_json), labels


def print_feasibility(records: list[Record], alphas: list[float] | None) -> None:
    from service.calibration.build import feasibility

    feas = feasibility(records, alphas or DEFAULT_ALPHAS)
    print(f"base error rate mu = {feas['mu']:.3f} on {feas['n']} labelled questions; least "
          "abstention any distribution-free method needs, (mu - alpha) / (1 - alpha):",
          file=sys.stderr)
    print("  " + "  ".join(f"a={a}: {v:.2f}" for a, v in feas["min_abstention"].items()),
          file=sys.stderr)


def run_calibrate(args: argparse.Namespace, start: Starter = load_engine) -> int:
    """``candor calibrate``; ``start`` starts the in-process engine when there is no
    ``--server`` (``service.bootstrap.load_engine``; tests pass a fake)."""
    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    if args.from_log:
        records, serving, labels = from_log(args.from_log)
        name = "decision-log"
    else:
        items, responses, serving = gather(args, start)
        if args.collect_only:
            print(json.dumps({"dataset": args.dataset, "n": len(responses)}))
            return 0
        from service.labelled.grading import make_encoder

        records, labels = to_records(items, responses, make_encoder(items)), "dataset"
        name = Path(args.dataset).stem
    print_feasibility(records, args.alphas)
    texts = bool(records) and all(r.question for r in records)  # else no embedder to load
    from service.calibration.artifact import describe_claims, save_artifact
    from service.calibration.build import build_artifact

    try:
        art = build_artifact(records, dataset=name, settings=serving, seed=args.split_seed,
                             delta=args.delta, holdout=args.holdout, alphas=args.alphas,
                             default_alpha=args.default_alpha, labels=labels,
                             profile=args.profile, tasks=args.tasks or (),
                             homogeneous=args.homogeneous,
                             embed=scope_embedder(args) if texts else None,
                             scope_level=args.scope_level,
                             scope_components=args.scope_components,
                             claim_alpha=args.claims_alpha,
                             collect={"max_tokens": args.max_tokens,
                                      "max_stage": args.max_stage, "n": args.n,
                                      "seed": args.seed})
    except ValueError as exc:
        raise SystemExit(f"candor: {exc}") from exc
    out = args.out or Path("runs") / "calibration" / f"{name}.json"
    save_artifact(art, out)
    print(json.dumps({"artifact": str(out), "id": art.id, "guarantee": art.guarantee,
                      "default_alpha": art.default_alpha,
                      "default_alpha_rule": art.default_alpha_rule,
                      "default_supported": art.default_supported,
                      "feasibility": art.feasibility, "heldout": art.heldout,
                      "claims": describe_claims(art)}, indent=1))
    if art.scope is None:
        print(f"candor: no scope test ({art.heldout.get('scope', {}).get('missing')}): a server "
              "promises nothing with this artifact (docs/calibration.md, \"Scope\")",
              file=sys.stderr)
    if art.claims is not None and art.claims.threshold is None:
        print(f"candor: no claim threshold is certified at --claims-alpha {art.claims.alpha:g} "
              f"with delta {art.delta:g}: claims mode keeps every claim and promises nothing "
              "(docs/claims.md)", file=sys.stderr)
    if not art.guarantee:
        print("candor: no guarantee: these labels are not an unbiased sample", file=sys.stderr)
    elif not art.default_supported:
        print(f"candor: the default target risk {art.default_alpha:g} is not supported by "
              "this data: a server with this artifact abstains on every request that sets no "
              "policy.target_risk", file=sys.stderr)
    return 0


def scope_embedder(args: argparse.Namespace) -> Embed | None:
    """The pinned embedding model, for the scope test's similarity (when it is asked for)."""
    if args.scope_components is not None and "similarity" not in args.scope_components:
        return None
    from service.config import Settings
    from service.signals.embedder import Embedder

    return Embedder(Settings().embedding_model).encode_sync


def alpha_or_auto(text: str) -> float | None:
    return None if text == "auto" else open_unit(text, "a number or 'auto'")


def open_unit(text: str, what: str = "a number") -> float:
    """A number in (0, 1), or an argparse error naming the value."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1)")
    return value


def add_calibrate_parser(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="fit calibration maps and risk-controlled thresholds")
    add_common(p)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--holdout", type=float, default=0.3, help="held-out fraction")
    p.add_argument("--delta", type=float, default=0.1, help="1 - delta = guarantee probability")
    p.add_argument("--alphas", type=float, nargs="+", default=None, help="target risks")
    p.add_argument("--default-alpha", type=alpha_or_auto, default=0.1,
                   help="the target risk served when a request sets none, fixed before "
                   "fitting; auto: the smallest alpha certified on the fit split (chosen "
                   "before the test split is looked at)")
    p.add_argument("--homogeneous", choices=("fitted", "fallback"), default="fitted",
                   help="fitted: single-cluster questions are fitted like the others (the "
                   "data decide what homogeneity says); fallback: such a stage keeps the "
                   "stage-0 confidence")
    p.add_argument("--scope-level", type=open_unit, default=DEFAULT_LEVEL,
                   help="the scope test's level, fixed before fitting: a request whose "
                   "p-value is below it is out of the profile's scope (no promise)")
    p.add_argument("--scope-components", nargs="+", choices=COMPONENTS, default=None,
                   help="what the scope test compares (default: all; similarity loads the "
                   "pinned embedding model)")
    p.add_argument("--claims-alpha", type=open_unit, default=DEFAULT_CLAIM_ALPHA,
                   help="multi-part datasets (claims mode): the claim-level target risk, fixed "
                   "before fitting: the share of answers keeping a wrong claim")
    p.add_argument("--profile", default="default", help="calibration profile name")
    p.add_argument("--tasks", nargs="+", default=None, help="tasks this profile covers")
    p.add_argument("--out", type=Path, default=None, help="artifact path")
    p.add_argument("--collect-only", action="store_true", help="fill the cache and stop")
    p.add_argument("--from-log", default=None,
                   help="calibrate from labelled decisions in the decision log (SQLite path "
                   "or postgresql:// URL)")
    p.set_defaults(func=run_calibrate)
