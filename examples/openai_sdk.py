"""Candor behind the OpenAI SDK: existing chat code keeps working and can read ``uncertainty``.

    python examples/openai_sdk.py --url http://127.0.0.1:8000 "What is the capital of France?"
    python examples/openai_sdk.py --stream live "What is the capital of France?"

``--stream live`` prints tokens as the engine generates them, then the verdict;
``--stream guarded`` streams only once the cascade has decided.

Exit code 0 when Candor answered, 3 when it abstained (the content is then the server's
abstention message and ``uncertainty.answer`` holds the model's own draft).
"""

from __future__ import annotations

import argparse
import sys

from openai import OpenAI


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("question")
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--api-key", default="unused", help="a key from CANDOR_API_KEYS, if set")
    p.add_argument("--max-stage", type=int, default=1)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--stream", choices=("guarded", "live"), default=None,
                   help="stream the answer (stream_mode); default: one JSON response")
    args = p.parse_args(argv)
    client = OpenAI(base_url=f"{args.url}/v1", api_key=args.api_key, timeout=300)
    model = client.models.list().data[0].id
    if args.stream:
        return stream(client, model, args)
    out = client.chat.completions.create(
        model=model, max_tokens=args.max_tokens,
        messages=[{"role": "user", "content": args.question}],
        extra_body={"policy": {"max_stage": args.max_stage}},
    )
    unc = (out.model_extra or {})["uncertainty"]
    print(out.choices[0].message.content)
    print(f"confidence={unc['confidence']:.2f} decision={unc['decision']} "
          f"stage={unc['stage_reached']} calibrated={unc['calibrated']} id={out.id}")
    # OpenAI's convention for a model that declines: `refusal` is set only on abstention
    return 3 if out.choices[0].message.refusal else 0


def stream(client: OpenAI, model: str, args: argparse.Namespace) -> int:
    """The SDK's ordinary streaming iterator; the last chunk carries ``uncertainty``."""
    unc = {}
    for chunk in client.chat.completions.create(
        model=model, max_tokens=args.max_tokens, stream=True,
        messages=[{"role": "user", "content": args.question}],
        extra_body={"stream_mode": args.stream, "policy": {"max_stage": args.max_stage}},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
        unc = (chunk.model_extra or {}).get("uncertainty") or unc
    print(f"\nconfidence={unc['confidence']:.2f} decision={unc['decision']} "
          f"stage={unc['stage_reached']} calibrated={unc['calibrated']} id={unc['id']}")
    return 3 if unc["abstained"] else 0


if __name__ == "__main__":
    sys.exit(main())
