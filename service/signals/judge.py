"""Stage 3: judge signals.

- ``p_true`` (Kadavath et al. 2022): one extra one-token pass asking the model
  whether its own answer is true; P(True) = mass of "True"/"Yes" over
  "True"/"Yes"/"False"/"No" among the top-k first-token log-probabilities.
  Higher = surer. None (uninformative) when none of these tokens is in the top-k.
- ``context_support``: when the request carries ``context``, how well the
  context supports the answer: the NLI entailment probability (context ->
  answer) when an NLI model is configured, else the cosine similarity of their
  embeddings clipped to [0, 1]. Higher = surer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from service.signals.base import SignalContext, SignalResult

YES = frozenset({"true", "yes"})
NO = frozenset({"false", "no"})

P_TRUE_TEMPLATE = (
    "Question: {question}\nProposed answer: {answer}\n"
    "Is the proposed answer correct? Reply with one word, True or False."
)


def p_true_from_top(tokens: Sequence[str], logprobs: Sequence[float]) -> float | None:
    """P(True) from the first generated token's top-k (token, logprob) pairs."""
    yes = no = 0.0
    for tok, lp in zip(tokens, logprobs, strict=True):
        if not math.isfinite(lp):
            continue
        word = tok.strip().strip(".").lower()
        if word in YES:
            yes += math.exp(lp)
        elif word in NO:
            no += math.exp(lp)
    if yes + no <= 0:
        return None
    return yes / (yes + no)


def cosine_support(answer_vec: np.ndarray, context_vec: np.ndarray) -> float:
    cos = float(answer_vec @ context_vec)
    return min(1.0, max(0.0, cos))


class JudgeSignal:
    """P(True) self-evaluation plus context support; each part runs when its input exists."""

    name = "judge"
    requires = ("answer",)

    async def score(self, ctx: SignalContext) -> SignalResult:
        assert ctx.answer is not None
        values: dict[str, float | None] = {"p_true": None, "context_support": None}
        parts: list[float] = []
        if ctx.p_true_provider is not None:
            p = await ctx.p_true_provider(ctx.question, ctx.answer)
            values["p_true"] = p
            if p is not None:
                parts.append(p)
        if ctx.context:
            if ctx.nli_provider is not None:
                probs = await ctx.nli_provider([(ctx.context, ctx.answer)])
                support = float(probs[0])
            elif ctx.embed_provider is not None:
                vecs = await ctx.embed([ctx.answer, ctx.context])
                support = cosine_support(vecs[0], vecs[1])
            else:
                support = None
            values["context_support"] = support
            if support is not None:
                parts.append(support)
        if not parts:
            return SignalResult(self.name, values, None, informative=False,
                                note="no judge signal available")
        return SignalResult(self.name, values, float(np.mean(parts)))
