"""The cascade's access to the engine, the embedder and the NLI model, per request.

Builds the prompts and hands the signals lazy providers (samples, embeddings, P(True),
NLI) that the ``SignalContext`` memoises. Token accounting lives with the request (a
``TokenMeter`` the runner creates per request), so a cancelled request leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.engine.protocol import (
    ChatMessage,
    EngineClient,
    Generation,
    GenParams,
    TextDelta,
)
from service.errors import BadRequest, EngineUnavailable, PayloadTooLarge
from service.signals.early_stop import decided, rounds
from service.signals.judge import P_TRUE_TEMPLATE, p_true_from_top
from service.signals.normalize import normalize_answer

CONTEXT_TEMPLATE = "Context:\n{context}\n\nQuestion: {question}"
OnDelta = Callable[[str, TextDelta], Awaitable[None]]  # (request id, delta)


def with_instruction(question: str, task: str, instruction: str | None) -> str:
    """The question as the model sees it: a math question gets ``instruction`` appended
    unless it already ends with it (CANDOR_MATH_INSTRUCTION)."""
    q = question.rstrip()
    if task != "math" or not instruction or q.endswith(instruction):
        return question
    return f"{q} {instruction}"


def build_messages(question: str, system: str | None, context: str | None) -> list[ChatMessage]:
    msgs = [ChatMessage("system", system)] if system else []
    content = CONTEXT_TEMPLATE.format(context=context, question=question) if context else question
    msgs.append(ChatMessage("user", content))
    return msgs


@dataclass(frozen=True)
class EarlyStopSampling:
    """Stage-1 samples in rounds of ``round_size``, stopped once decided (``early_stop.py``)."""

    round_size: int
    confidence: float


@dataclass
class TokenMeter:
    """Tokens one request's signals generated (samples, P(True)), beyond the greedy answer."""

    total: int = 0


@dataclass
class Providers:
    engine: EngineClient
    top_logprobs: int
    samples_n: int
    sample_temperature: float
    sample_max_tokens: int
    max_model_len: int
    max_question_chars: int
    early_stop: EarlyStopSampling | None = None
    embed: Callable[[list[str]], Awaitable[np.ndarray]] | None = None
    nli: Callable[[list[tuple[str, str]]], Awaitable[np.ndarray]] | None = None

    async def check_prompt(self, messages: list[ChatMessage], max_tokens: int) -> None:
        chars = sum(len(m.content) for m in messages)
        if chars > self.max_question_chars:
            raise PayloadTooLarge(
                f"prompt is {chars} characters; the limit is {self.max_question_chars}",
                param="question",
            )
        n = await self.engine.count_prompt_tokens(messages)
        if n + max_tokens > self.max_model_len:
            raise BadRequest(
                f"prompt ({n} tokens) + max_tokens ({max_tokens}) exceeds the model's "
                f"context of {self.max_model_len} tokens",
                param="question",
            )

    async def greedy(self, messages: list[ChatMessage], max_tokens: int, rid: str,
                     on_delta: OnDelta | None = None) -> Generation:
        """The greedy pass; with ``on_delta`` it is streamed (``engine.stream``) and each
        delta handed on with the request's id as it arrives; the result is the same
        ``Generation`` either way."""
        params = GenParams(n=1, temperature=0.0, max_tokens=max_tokens,
                           top_logprobs=self.top_logprobs)
        if on_delta is None:
            return await self.engine.generate(messages, params, f"{rid}-greedy")
        final, prompt_tokens = None, 0
        async with aclosing(self.engine.stream(messages, params, f"{rid}-greedy")) as deltas:
            async for delta in deltas:
                await on_delta(rid, delta)
                if delta.final is not None:
                    final, prompt_tokens = delta.final, delta.prompt_tokens
        if final is None:
            raise EngineUnavailable("the engine's stream ended without a final completion")
        return Generation((final,), prompt_tokens, final.n_tokens)

    def signal_providers(
        self, messages: list[ChatMessage], rid: str, max_tokens: int, answer: str = "",
        task: str = "auto", *, meter: TokenMeter,
    ) -> dict[str, Any]:
        async def draw(n: int, tag: str) -> list[str]:
            params = GenParams(n=n, temperature=self.sample_temperature,
                               max_tokens=min(max_tokens, self.sample_max_tokens))
            gen = await self.engine.generate(messages, params, f"{rid}-samples{tag}")
            meter.total += gen.completion_tokens
            return [c.text for c in gen.completions]

        async def samples() -> list[str]:
            if self.early_stop is None:
                return await draw(self.samples_n, "")
            greedy = normalize_answer(answer, task)
            out: list[str] = []
            for i, size in enumerate(rounds(self.samples_n, self.early_stop.round_size)):
                out += await draw(size, f"-{i}")  # the prompt's prefix is cached
                agree = sum(normalize_answer(s, task) == greedy for s in out)
                if decided(agree, len(out), self.early_stop.confidence):
                    break
            return out

        async def p_true(question: str, answer: str) -> float | None:
            prompt = [ChatMessage("user", P_TRUE_TEMPLATE.format(question=question,
                                                                 answer=answer))]
            params = GenParams(n=1, temperature=0.0, max_tokens=1, top_logprobs=20)
            gen = await self.engine.generate(prompt, params, f"{rid}-ptrue")
            meter.total += gen.completion_tokens
            comp = gen.completions[0]
            if not comp.tokens:
                return None
            first = comp.tokens[0]
            return p_true_from_top(first.top_tokens, first.top_logprobs)

        return {
            "sample_provider": samples,
            "embed_provider": self.embed,
            "p_true_provider": p_true,
            "nli_provider": self.nli,
        }
