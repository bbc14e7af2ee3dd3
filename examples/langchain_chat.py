"""Candor as a LangChain chat model: the answer, its confidence, and a fallback on abstention.

    python examples/langchain_chat.py --url http://127.0.0.1:8000 "What is 3 + 4?"
    python examples/langchain_chat.py --stream "What is 3 + 4?"
    python examples/langchain_chat.py --fallback "What is 4821 x 3907?"

``ChatCandor`` (``pip install 'candor-client[langchain]'``) is ``ChatOpenAI`` pointed at
Candor: ``response_metadata`` carries ``abstained`` and the ``uncertainty`` object (on a
stream, on the last chunk). ``--fallback`` builds the chain a product would: Candor raises
``CandorAbstained`` when unsure and ``with_fallbacks`` hands the question to a human
queue (here a function that files it and says so).

Exit code 0 when Candor answered, 3 when it abstained (also with ``--fallback``).
"""

from __future__ import annotations

import argparse
import sys

from candor_client.langchain import CandorAbstained, ChatCandor
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableLambda


def human_queue(question: object) -> AIMessage:
    """The fallback: file the question for a person (printed here) and tell the user."""
    print(f"[to human review] {question}", file=sys.stderr)
    return AIMessage("A specialist will answer this question.",
                     response_metadata={"abstained": True, "escalated": True})


def report(msg: BaseMessage, echo: bool = True) -> int:
    """Print the answer (unless streamed already) and the verdict; the exit code."""
    meta = msg.response_metadata
    unc = meta.get("uncertainty") or {}
    if echo:
        print(msg.content)
    if unc:
        print(f"confidence={unc['confidence']:.2f} decision={unc['decision']} "
              f"stage={unc['stage_reached']} calibrated={unc['calibrated']} id={unc['id']}")
    return 3 if meta.get("abstained") else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("question")
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--api-key", default="unused", help="a key from CANDOR_API_KEYS, if set")
    p.add_argument("--max-stage", type=int, default=1)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--stream", action="store_true", help="stream (guarded: vetted text only)")
    p.add_argument("--fallback", action="store_true",
                   help="raise on abstention and route the question to a human queue")
    args = p.parse_args(argv)
    llm = ChatCandor(base_url=f"{args.url}/v1", api_key=args.api_key, timeout=300,
                     max_tokens=args.max_tokens, policy={"max_stage": args.max_stage},
                     raise_on_abstain=args.fallback)
    if args.fallback:
        chain = llm.with_fallbacks([RunnableLambda(human_queue)],
                                   exceptions_to_handle=(CandorAbstained,))
        return report(chain.invoke(args.question))
    if not args.stream:
        return report(llm.invoke(args.question))
    merged = None
    for chunk in llm.stream(args.question):
        print(chunk.content, end="", flush=True)
        merged = chunk if merged is None else merged + chunk
    print()
    assert merged is not None
    return report(merged, echo=False)


if __name__ == "__main__":
    sys.exit(main())
