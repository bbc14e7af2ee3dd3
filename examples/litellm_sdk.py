"""Candor through LiteLLM's SDK: the answer, Candor's verdict, and a fallback on abstention.

    export LITELLM_LOCAL_MODEL_COST_MAP=True
    python examples/litellm_sdk.py --url http://127.0.0.1:8000 "What is 3 + 4?"
    python examples/litellm_sdk.py --fallback-model openai/gpt-4o-mini "What is 4821 x 3907?"

Candor is an OpenAI-compatible provider to LiteLLM (``model="openai/candor"``, ``api_base``
its ``/v1``). LiteLLM keeps Candor's top-level ``uncertainty`` on the ``ModelResponse``,
the OpenAI ``refusal`` field on an abstention, and Candor's ``Candor-*`` headers in
``response._hidden_params["additional_headers"]`` (as ``llm_provider-candor-*``).
``LITELLM_LOCAL_MODEL_COST_MAP=True`` keeps LiteLLM from fetching its price list at import
(offline machines).

On an abstention, ``--fallback-model`` (any LiteLLM model string) answers instead.
Exit code 0 when Candor answered, 3 when it abstained (and no fallback was asked for).
"""

from __future__ import annotations

import argparse
import sys

import litellm


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("question")
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--api-key", default="unused", help="a key from CANDOR_API_KEYS, if set")
    p.add_argument("--max-stage", type=int, default=1)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--fallback-model", default=None,
                   help="a LiteLLM model that answers when Candor abstains")
    args = p.parse_args(argv)
    messages = [{"role": "user", "content": args.question}]
    out = litellm.completion(
        model="openai/candor", api_base=f"{args.url}/v1", api_key=args.api_key,
        messages=messages, max_tokens=args.max_tokens, timeout=300,
        extra_body={"policy": {"max_stage": args.max_stage}},
    )
    unc = out.uncertainty  # Candor's verdict, kept by LiteLLM
    headers = out._hidden_params.get("additional_headers") or {}
    print(out.choices[0].message.content)
    print(f"confidence={unc['confidence']:.2f} decision={unc['decision']} "
          f"stage={unc['stage_reached']} calibrated={unc['calibrated']} "
          f"header={headers.get('llm_provider-candor-decision')}")
    if not out.choices[0].message.refusal:  # the OpenAI convention: set only on abstention
        return 0
    if args.fallback_model is None:
        return 3
    backup = litellm.completion(model=args.fallback_model, messages=messages)
    print(f"[{args.fallback_model}] {backup.choices[0].message.content}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
