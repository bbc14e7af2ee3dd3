"""The seam between the cascade and whatever generates text.

An engine takes chat messages and returns completions with per-token
log-probabilities. Everything vLLM-specific stays in ``vllm_local.py``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class TokenInfo:
    """One generated token: its log-probability and the top-k log-probabilities there."""

    token: str
    logprob: float
    top_logprobs: tuple[float, ...] = ()
    top_tokens: tuple[str, ...] = ()


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: tuple[TokenInfo, ...] = ()
    n_tokens: int = 0
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Generation:
    """All completions of one request, sharing one prompt (and its prefix cache)."""

    completions: tuple[Completion, ...]
    prompt_tokens: int
    completion_tokens: int = field(default=0)


@dataclass(frozen=True)
class GenParams:
    n: int = 1
    temperature: float = 0.0
    max_tokens: int = 256
    top_logprobs: int | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of a streamed greedy completion: new text and its tokens.

    The last delta of a stream carries ``final``: the whole completion, exactly what
    ``generate`` would have returned for the same request (text, tokens, finish reason).
    """

    text: str
    tokens: tuple[TokenInfo, ...] = ()
    final: Completion | None = None
    prompt_tokens: int = 0


@dataclass(frozen=True)
class EngineLoad:
    """What the engine itself reports running and waiting (sequences, every client's),
    and the share of its KV cache in use (0-1)."""

    running: int
    waiting: int
    kv_cache_usage: float = 0.0


@runtime_checkable
class ReportsLoad(Protocol):
    """An engine shared with other clients, whose load Candor's own count cannot see."""

    async def load(self) -> EngineLoad | None:
        """The engine's load now; None when it cannot be read (never raises)."""
        ...


@runtime_checkable
class EngineClient(Protocol):
    """What the cascade needs from a model server."""

    model_id: str
    chat_template_hash: str | None  # sha256[:16] of the chat template (None: not known)

    async def generate(
        self, messages: list[ChatMessage], params: GenParams, request_id: str
    ) -> Generation:
        """Generate ``params.n`` completions. Cancelling the call aborts the engine work."""
        ...

    def stream(
        self, messages: list[ChatMessage], params: GenParams, request_id: str
    ) -> AsyncGenerator[TextDelta, None]:
        """One completion (``params.n == 1``) as it is generated; the last delta has
        ``final``. Closing the iterator (or cancelling its consumer) aborts the work."""
        ...

    async def count_prompt_tokens(self, messages: list[ChatMessage]) -> int:
        """Tokens the chat-templated prompt takes (for limits). Async: a remote engine asks
        its server."""
        ...

    async def health(self) -> bool:
        """True when the engine can serve; False (never raises) when it is dead."""
        ...

    async def aclose(self) -> None: ...
