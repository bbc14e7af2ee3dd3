"""``candor-client``: ask Candor from a shell; the exit code says whether it abstained.

Exit codes: 0 answered (or ready), 3 abstained (EXIT_ABSTAINED), 1 an error (HTTP,
connection, engine not ready), 2 bad command line. So a script can branch::

    candor-client ask "Is 91 prime?"; case $? in 0) ok;; 3) to_human;; *) fail;; esac
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from candor_client.client import CandorClient
from candor_client.errors import CandorError
from candor_client.models import Answer

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_ABSTAINED = 0, 1, 2, 3


def confidence_line(ans: Answer) -> str:
    """One readable line: confidence, calibration, where the cascade decided, cost, id.

    It is always the last line printed (the answer above it may span several lines). A
    request outside its profile's scope says so: no risk is promised for it.
    """
    cal = "calibrated" if ans.calibrated else "uncalibrated"
    sc = ans.scope
    if sc.tested and sc.in_scope is False:
        cal += f"; out of scope: nearest {sc.profile}, p = {sc.p_value} < {sc.level}, no promise"
    stage = next((s.name for s in ans.stages if s.stage == ans.stage_reached), "?")
    ms = sum(s.ms for s in ans.stages)
    return (f"confidence: {ans.confidence:.2f} ({cal}) | decided at stage {ans.stage_reached} "
            f"({stage}) | {ms:.0f} ms | {ans.usage.completion_tokens} tokens | id {ans.id}")


def claim_lines(ans: Answer) -> list[str]:
    """Claims mode: one line per claim (kept or dropped, its confidence), then the
    claim-level promise or why there is none."""
    if ans.claims is None:
        return []
    out = [f"  [{'kept' if c.kept else 'dropped'} {c.confidence:.2f}] "
           + " ".join(c.text.split()) for c in ans.claims.items]
    cl = ans.claims
    if cl.target_risk is not None and cl.delta is not None:
        out.append(f"claims: at most {cl.target_risk:.0%} of answers served this way keep a "
                   f"wrong claim (probability >= {1 - cl.delta:.0%})")
    else:
        out.append(f"claims: no claim-level promise ({cl.reason})")
    return out


def _ask(client: CandorClient, args: argparse.Namespace) -> int:
    policy = {"max_stage": args.max_stage} if args.max_stage is not None else None
    ans = client.answer(args.question, system=args.system, context=args.context, task=args.task,
                        max_tokens=args.max_tokens, policy=policy, claims=args.claims)
    if args.json:
        print(json.dumps(ans.model_dump(mode="json"), indent=2))
    else:
        if ans.abstained:
            guess = " ".join(ans.answer.split())  # one line, whatever the model wrote
            print(f"[abstained: {ans.reason or 'unsure'}] best guess: {guess}")
        else:
            print(ans.answer.strip())
        for line in claim_lines(ans):
            print(line)
        print(confidence_line(ans))
    return EXIT_ABSTAINED if ans.abstained else EXIT_OK


def _health(client: CandorClient, args: argparse.Namespace) -> int:
    h = client.health()
    print(json.dumps(h.model_dump(mode="json")) if args.json else
          f"ready ({h.model})" if h.ready else f"not ready: {h.detail}")
    return EXIT_OK if h.ready else EXIT_ERROR


def _calibration(client: CandorClient, args: argparse.Namespace) -> int:
    print(json.dumps(client.calibration().model_dump(mode="json", exclude_unset=True), indent=2))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="candor-client", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="server URL (env CANDOR_BASE_URL)")
    p.add_argument("--api-key", default=None, help="API key (env CANDOR_API_KEY)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per attempt")
    p.add_argument("--max-retries", type=int, default=None)
    sub = p.add_subparsers(dest="command", required=True)
    ask = sub.add_parser("ask", help="answer a question with a confidence")
    ask.add_argument("question")
    ask.add_argument("--system", default=None)
    ask.add_argument("--context", default=None)
    ask.add_argument("--task", default="auto", choices=["auto", "factual", "math", "open"])
    ask.add_argument("--max-tokens", type=int, default=None)
    ask.add_argument("--max-stage", type=int, default=None, choices=range(4))
    ask.add_argument("--claims", action="store_true",
                     help="claims mode: a confidence per claim, kept or dropped")
    ask.add_argument("--json", action="store_true", help="print the full response as JSON")
    ask.set_defaults(func=_ask)
    health = sub.add_parser("health", help="is the server up and its engine ready?")
    health.add_argument("--json", action="store_true")
    health.set_defaults(func=_health)
    cal = sub.add_parser("calibration", help="print the active calibration artifact")
    cal.set_defaults(func=_calibration)
    return p


def main(argv: Sequence[str] | None = None, client: CandorClient | None = None) -> int:
    """Entry point; ``client`` lets tests inject a client on a fake transport."""
    args = build_parser().parse_args(argv)
    try:
        with client or CandorClient(args.url, api_key=args.api_key, timeout=args.timeout,
                                    max_retries=args.max_retries) as c:
            return int(args.func(c, args))
    except CandorError as exc:
        print(f"candor-client: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
