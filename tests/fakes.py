"""A scripted engine and embedder for unit tests (never used by integration tests)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from service.engine.protocol import (
    ChatMessage,
    Completion,
    Generation,
    GenParams,
    TextDelta,
    TokenInfo,
)


@dataclass
class Script:
    """What the fake model says to one question."""

    greedy: str = "The answer is 4."
    logprob: float = -0.1  # every greedy token
    top: tuple[float, ...] = (-0.1, -2.5, -3.0)
    samples: list[str] | None = None  # None: every sample equals the greedy answer
    p_true: tuple[float, float] = (-0.2, -1.7)  # logprobs of "True", "False"


@dataclass
class FakeEngine:
    scripts: dict[str, Script] = field(default_factory=dict)
    default: Script = field(default_factory=Script)
    delay_s: float = 0.0
    model_id: str = "fake-model"
    healthy: bool = True
    calls: list[tuple[str, GenParams]] = field(default_factory=list)
    active: set[str] = field(default_factory=set)
    closed: bool = False

    def _script(self, messages: list[ChatMessage]) -> Script:
        text = messages[-1].content
        for key, script in self.scripts.items():
            if key in text:
                return script
        return self.default

    chat_template_hash: str | None = "fake-template"

    def _count(self, messages: list[ChatMessage]) -> int:
        return sum(len(m.content.split()) for m in messages) + 5

    async def count_prompt_tokens(self, messages: list[ChatMessage]) -> int:
        return self._count(messages)

    async def stream(
        self, messages: list[ChatMessage], params: GenParams, request_id: str
    ) -> AsyncIterator[TextDelta]:
        """The greedy answer word by word (``delay_s`` between words); the last delta is final."""
        self.calls.append((request_id, params))
        self.active.add(request_id)
        try:
            gen = await self.generate(messages, params, request_id + "-inner")
            comp = gen.completions[0]
            words = comp.text.split(" ")
            for i, w in enumerate(words):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                last = i == len(words) - 1
                yield TextDelta(w if i == 0 else " " + w,
                                comp.tokens[i:i + 1] if comp.tokens else (),
                                comp if last else None, gen.prompt_tokens)
        finally:
            self.active.discard(request_id)

    async def generate(
        self, messages: list[ChatMessage], params: GenParams, request_id: str
    ) -> Generation:
        self.calls.append((request_id, params))
        self.active.add(request_id)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if not self.healthy:
                from service.errors import EngineUnavailable

                raise EngineUnavailable("fake engine is down")
            script = self._script(messages)
            if params.max_tokens == 1 and params.top_logprobs:  # the P(True) pass
                lt, lf = script.p_true
                tok = TokenInfo("True", lt, (lt, lf), ("True", "False"))
                comps: tuple[Completion, ...] = (Completion("True", (tok,), 1),)
            elif params.n == 1 and params.temperature == 0.0:
                words = script.greedy.split()
                toks = tuple(
                    TokenInfo(w, script.logprob, script.top if params.top_logprobs else ())
                    for w in words
                )
                comps = (Completion(script.greedy, toks if params.top_logprobs else (),
                                    len(words)),)
            else:
                texts = script.samples or [script.greedy] * params.n
                comps = tuple(Completion(t, (), len(t.split())) for t in texts[: params.n])
            return Generation(comps, self._count(messages),
                              sum(c.n_tokens for c in comps))
        finally:
            self.active.discard(request_id)

    async def health(self) -> bool:
        return self.healthy

    async def aclose(self) -> None:
        self.closed = True


class FakeEmbedder:
    """Deterministic embeddings: identical normalised text -> identical vector."""

    dim = 16

    def encode_sync(self, texts: list[str]) -> np.ndarray:
        out = []
        for t in texts:
            seed = int(hashlib.sha256(t.strip().lower().encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=self.dim)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out)

    async def encode(self, texts: list[str]) -> np.ndarray:
        return self.encode_sync(texts)
