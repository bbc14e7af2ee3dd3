"""``ChatCandor``: Candor as a LangChain chat model (``pip install 'candor-client[langchain]'``).

    from candor_client.langchain import ChatCandor
    llm = ChatCandor(base_url="http://127.0.0.1:8000/v1", policy={"max_stage": 1})
    msg = llm.invoke("What is 3 + 4?")
    msg.response_metadata["abstained"]     # True when Candor withheld the answer
    msg.response_metadata["uncertainty"]   # the /v1/answer response: confidence, promise, ...

It is ``langchain_openai.ChatOpenAI`` pointed at Candor's ``/v1/chat/completions``, so
``invoke``/``ainvoke``/``stream``/``astream``/``batch`` and every chain work as usual. What
it adds: Candor's ``uncertainty`` object and an ``abstained`` flag in ``response_metadata``
(on a stream, on the last chunk, so the merged message has them), Candor's options
(``policy``, ``task``, ``stream_mode``) as fields, and, with ``raise_on_abstain=True``, a
``CandorAbstained`` exception instead of the abstention message as the answer: a chain
can then route it with ``.with_fallbacks([...], exceptions_to_handle=(CandorAbstained,))``.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import openai
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import Field, SecretStr

from candor_client._base import DEFAULT_BASE_URL
from candor_client.errors import CandorError


def _base_url() -> str:
    return (os.environ.get("CANDOR_BASE_URL") or DEFAULT_BASE_URL).rstrip("/") + "/v1"


def _api_key() -> SecretStr:
    """Candor's key (``CANDOR_API_KEY``), never ``OPENAI_API_KEY``: a server without keys
    ignores the placeholder."""
    return SecretStr(os.environ.get("CANDOR_API_KEY") or "unused")


class CandorAbstained(CandorError):
    """Candor abstained (``raise_on_abstain=True``). ``uncertainty`` is the /v1/answer
    response (its ``reason``, ``confidence``, ``calibration`` and the model's own draft in
    ``answer``); ``message`` is the server's abstention message."""

    def __init__(self, uncertainty: dict[str, Any], message: str) -> None:
        self.uncertainty = uncertainty
        self.message = message
        super().__init__(f"Candor abstained ({uncertainty.get('reason')}, confidence "
                         f"{uncertainty.get('confidence', float('nan')):.2f}): {message}")


class ChatCandor(ChatOpenAI):
    """A LangChain chat model backed by a Candor server (see the module docstring)."""

    model_name: str = Field(default="candor", alias="model")
    openai_api_base: str | None = Field(default_factory=_base_url, alias="base_url")
    """Candor's OpenAI-compatible root; default ``$CANDOR_BASE_URL/v1`` (or 127.0.0.1:8000)."""
    openai_api_key: SecretStr | None = Field(default_factory=_api_key, alias="api_key")
    policy: dict[str, Any] | None = None
    """Candor's ``policy`` (max_stage, target_risk, budget_ms, ...); None: the server's."""
    task: str | None = None
    """``auto`` (default on the server), ``math``, ``factual``, ..."""
    stream_mode: Literal["guarded", "live"] = "guarded"
    """On ``stream``: ``guarded`` sends vetted text only; ``live`` tokens as generated."""
    raise_on_abstain: bool = False
    """Raise ``CandorAbstained`` instead of returning the abstention message."""

    @property
    def _llm_type(self) -> str:
        return "candor-chat"

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None,
                             **kwargs: Any) -> dict[str, Any]:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        extra = dict(payload.get("extra_body") or {})
        if self.policy is not None:
            extra.setdefault("policy", self.policy)
        if self.task is not None:
            extra.setdefault("task", self.task)
        if payload.get("stream"):
            extra.setdefault("stream_mode", self.stream_mode)
        payload["extra_body"] = extra
        return payload

    def _verdict(self, uncertainty: dict[str, Any] | None, message: str,
                 metadata: dict[str, Any]) -> None:
        if uncertainty is None:
            return
        metadata["uncertainty"] = uncertainty
        metadata["abstained"] = bool(uncertainty.get("abstained"))
        if self.raise_on_abstain and metadata["abstained"]:
            raise CandorAbstained(uncertainty, message)

    def _create_chat_result(self, response: dict[str, Any] | openai.BaseModel,
                            generation_info: dict[str, Any] | None = None) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        body = response if isinstance(response, dict) else (response.model_extra or {})
        msg = result.generations[0].message
        self._verdict(body.get("uncertainty"), str(msg.content), msg.response_metadata)
        return result

    def _convert_chunk_to_generation_chunk(
        self, chunk: dict[str, Any], default_chunk_class: type,
        base_generation_info: dict[str, Any] | None,
    ) -> ChatGenerationChunk | None:
        gen = super()._convert_chunk_to_generation_chunk(chunk, default_chunk_class,
                                                         base_generation_info)
        if gen is not None and "uncertainty" in chunk:
            delta = (chunk.get("choices") or [{}])[0].get("delta") or {}
            message = delta.get("refusal") or delta.get("content") or ""
            self._verdict(chunk["uncertainty"], message, gen.message.response_metadata)
        return gen
