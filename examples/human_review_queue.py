"""Selective prediction in a product: answer what Candor is sure of, queue the rest for people.

A support desk gets questions; confident answers go straight back to the customer, and
abstentions (plus any error) go to a human review queue (a JSONL file here; a ticket
system in real life) with the model's best guess and confidence to speed the review.
Concurrent requests are batched by the engine, so the desk asks them together.

Audited decisions (``audit: true``: a uniform random share of *all* decisions, set by
``CANDOR_AUDIT_RATE`` on the server) also go to reviewers, answered or not, in a
separate audit queue: the labels people give them (``POST /v1/feedback`` with the
``candor_id``) are the unbiased sample that recalibration (``candor calibrate
--from-log``) and live monitoring use. Labels of the review queue are welcome too,
but they are chosen by doubt and certify nothing; keep the two queues apart.

    CANDOR_AUDIT_RATE=0.02 candor serve &                  # the embedded model
    python examples/human_review_queue.py --url http://127.0.0.1:8000 \
        --questions examples/questions.txt --queue review_queue.jsonl \
        --audit-queue audit_queue.jsonl

Prints one line per question and a summary (coverage = share answered automatically).
Exit code 0 when everything was routed (answered or queued), 1 when the server failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from candor_client import Answer, AsyncCandorClient, CandorError


@dataclass
class Routed:
    question: str
    route: str  # "customer" | "human"
    answer: Answer | None
    error: str | None = None


async def route_one(candor: AsyncCandorClient, question: str, policy: dict[str, Any],
                    max_tokens: int | None) -> Routed:
    """Ask Candor; an abstention or a failure sends the question to a person."""
    try:
        ans = await candor.answer(question, policy=policy, max_tokens=max_tokens)
    except CandorError as exc:
        return Routed(question, "human", None, error=str(exc))
    return Routed(question, "human" if ans.abstained else "customer", ans)


def queue_item(r: Routed) -> dict[str, Any]:
    """What a reviewer sees: the question, the model's guess and why it was not sent."""
    a = r.answer
    return {"question": r.question, "draft": a.answer.strip() if a else None,
            "confidence": a.confidence if a else None, "reason": a.reason if a else r.error,
            "candor_id": a.id if a else None}


def audit_item(r: Routed) -> dict[str, Any]:
    """An audited decision for a reviewer: label it correct or not, whatever was decided."""
    assert r.answer is not None
    return {**queue_item(r), "decision": r.answer.decision, "sent_to": r.route,
            "audit": True, "label_with": "POST /v1/feedback {id: candor_id, correct: ...}"}


def audited(r: Routed) -> bool:
    return r.answer is not None and bool(getattr(r.answer, "audit", False))


async def run(args: argparse.Namespace) -> int:
    questions = [q.strip() for q in Path(args.questions).read_text().splitlines() if q.strip()]
    policy: dict[str, Any] = {"max_stage": args.max_stage}
    if args.audit_rate is not None:  # an admin's raised rate; the monitors thin it back
        policy["audit_rate"] = args.audit_rate
    sem = asyncio.Semaphore(args.concurrency)
    async with AsyncCandorClient(args.url, api_key=args.api_key,
                                 timeout=args.timeout) as candor:
        async def bounded(q: str) -> Routed:
            async with sem:
                return await route_one(candor, q, policy, args.max_tokens)

        routed = await asyncio.gather(*(bounded(q) for q in questions))
    with open(args.queue, "a", encoding="utf-8") as queue:
        for r in routed:
            if r.route == "human":
                queue.write(json.dumps(queue_item(r)) + "\n")
    with open(args.audit_queue, "a", encoding="utf-8") as audit:
        for r in routed:
            if audited(r):
                audit.write(json.dumps(audit_item(r)) + "\n")
    for r in routed:
        conf = f"{r.answer.confidence:.2f}" if r.answer else "n/a"
        text = r.answer.answer.strip().replace("\n", " ")[:60] if r.answer else r.error
        print(f"[{r.route:8}] conf={conf} {r.question[:50]!r} -> {text}")
    answered = sum(r.route == "customer" for r in routed)
    failed = sum(r.error is not None for r in routed)
    print(json.dumps({"questions": len(routed), "answered": answered,
                      "to_human": len(routed) - answered, "errors": failed,
                      "coverage": round(answered / len(routed), 3) if routed else None,
                      "audited": sum(audited(r) for r in routed),
                      "queue": str(args.queue), "audit_queue": str(args.audit_queue)}))
    return 1 if failed == len(routed) and routed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="Candor URL (env CANDOR_BASE_URL)")
    p.add_argument("--questions", default=str(Path(__file__).with_name("questions.txt")))
    p.add_argument("--queue", default="review_queue.jsonl", help="JSONL file for people")
    p.add_argument("--audit-queue", default="audit_queue.jsonl",
                   help="JSONL file of audited decisions (the unbiased labels)")
    p.add_argument("--max-stage", type=int, default=1, choices=range(4))
    p.add_argument("--audit-rate", type=float, default=None,
                   help="raise these requests' audit rate above the server's "
                   "CANDOR_AUDIT_RATE (needs an admin key: --api-key)")
    p.add_argument("--api-key", default=None, help="Candor key (env CANDOR_API_KEY)")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--timeout", type=float, default=300.0)
    return asyncio.run(run(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
