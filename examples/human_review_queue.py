"""Selective prediction in a product: answer what Candor is sure of, queue the rest for people.

A support desk gets questions; confident answers go straight back to the customer, and
abstentions (plus any error) go to a human review queue (a JSONL file here; a ticket
system in real life) with the model's best guess and confidence to speed the review.
Concurrent requests are batched by the engine, so the desk asks them together.

    candor serve &                                         # the embedded model
    python examples/human_review_queue.py --url http://127.0.0.1:8000 \
        --questions examples/questions.txt --queue review_queue.jsonl

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


async def run(args: argparse.Namespace) -> int:
    questions = [q.strip() for q in Path(args.questions).read_text().splitlines() if q.strip()]
    policy = {"max_stage": args.max_stage}
    sem = asyncio.Semaphore(args.concurrency)
    async with AsyncCandorClient(args.url, timeout=args.timeout) as candor:
        async def bounded(q: str) -> Routed:
            async with sem:
                return await route_one(candor, q, policy, args.max_tokens)

        routed = await asyncio.gather(*(bounded(q) for q in questions))
    with open(args.queue, "a", encoding="utf-8") as queue:
        for r in routed:
            if r.route == "human":
                queue.write(json.dumps(queue_item(r)) + "\n")
    for r in routed:
        conf = f"{r.answer.confidence:.2f}" if r.answer else "n/a"
        text = r.answer.answer.strip().replace("\n", " ")[:60] if r.answer else r.error
        print(f"[{r.route:8}] conf={conf} {r.question[:50]!r} -> {text}")
    answered = sum(r.route == "customer" for r in routed)
    failed = sum(r.error is not None for r in routed)
    print(json.dumps({"questions": len(routed), "answered": answered,
                      "to_human": len(routed) - answered, "errors": failed,
                      "coverage": round(answered / len(routed), 3) if routed else None,
                      "queue": str(args.queue)}))
    return 1 if failed == len(routed) and routed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="Candor URL (env CANDOR_BASE_URL)")
    p.add_argument("--questions", default=str(Path(__file__).with_name("questions.txt")))
    p.add_argument("--queue", default="review_queue.jsonl", help="JSONL file for people")
    p.add_argument("--max-stage", type=int, default=1, choices=range(4))
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--timeout", type=float, default=300.0)
    return asyncio.run(run(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
