"""OpenAI chat-completions models and their mapping onto the cascade (docs/api.md).

A chat request becomes one ``AnswerRequest``: system/developer messages become the
system prompt, the last message must be the user's question. Earlier user/assistant
turns are rejected (400, ``param="messages"``): the cascade scores one question, and
folding a transcript into it would change what its confidence is about. Sampling knobs
that conflict with the cascade are rejected (``n>1``, ``stop``, ``tools``, ``logprobs``)
or ignored (``temperature``, ``top_p``: the answer is always the greedy one and the
samples use the server's temperature). Candor's own options ride along as extra body
fields (``policy``, ``task``, ``context``), e.g. the OpenAI SDK's ``extra_body``.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.errors import BadRequest
from service.schemas import AnswerRequest, AnswerResponse, PolicyIn, Task, Usage

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
StreamMode = Literal["guarded", "live"]


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Role
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class ChatCompletionRequest(BaseModel):
    """The OpenAI fields Candor reads; other OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(default=None, description="Ignored: the served model answers.")
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, description="Ignored (greedy answer).")
    top_p: float | None = Field(default=None, description="Ignored (greedy answer).")
    n: int = Field(default=1, description="Must be 1.")
    stream: bool = Field(default=False, description="true: server-sent events (stream_mode).")
    stream_mode: StreamMode = Field(
        default="guarded",
        description="With stream=true. guarded: the text is held until the cascade has "
        "decided, then sent with the verdict (an abstention sends only the abstention "
        "message). live: tokens as the engine generates them, then a last chunk with the "
        "verdict (uncertainty; on abstention the abstention message as its content).")
    stop: str | list[str] | None = Field(default=None, description="Not supported (400).")
    logprobs: bool | None = Field(default=None, description="Not supported (400).")
    tools: list[dict[str, Any]] | None = Field(default=None, description="Not supported (400).")
    # Candor extensions (extra_body in the OpenAI SDK)
    policy: PolicyIn = Field(default_factory=PolicyIn)
    task: Task = "auto"
    context: str | None = None


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletionResponse(BaseModel):
    id: str = Field(description="The same id as uncertainty.id (use it for /v1/feedback).")
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    uncertainty: AnswerResponse = Field(description="The /v1/answer response of this request.")


def _reject(message: str, param: str) -> BadRequest:
    return BadRequest(message, param=param)


def to_answer_request(req: ChatCompletionRequest) -> AnswerRequest:
    """Map a chat request onto the cascade's request, or raise ``BadRequest`` saying why."""
    if req.n != 1:
        raise _reject("n must be 1: Candor returns one answer with its confidence", "n")
    if req.stop:
        raise _reject("stop sequences are not supported by the cascade", "stop")
    if req.logprobs:
        raise _reject("logprobs are not supported here; use /v1/answer with "
                      "return_logprobs=true", "logprobs")
    if req.tools:
        raise _reject("tools are not supported: Candor answers questions", "tools")
    system = [m.text() for m in req.messages if m.role in ("system", "developer")]
    turns = [m for m in req.messages if m.role not in ("system", "developer")]
    if not turns or turns[-1].role != "user":
        raise _reject("the last non-system message must be the user's question", "messages")
    if len(turns) > 1:
        raise _reject("multi-turn conversations are not supported: send the system prompt and "
                      "one user question (Candor's confidence is about that question)",
                      "messages")
    question = turns[-1].text()
    if not question.strip():
        raise _reject("the user message must not be empty", "messages")
    try:
        return AnswerRequest(
            question=question, system="\n\n".join(s for s in system if s) or None,
            context=req.context, task=req.task,
            max_tokens=req.max_completion_tokens or req.max_tokens, policy=req.policy,
        )
    except ValidationError as exc:  # a rule of /v1/answer the chat schema does not carry
        first = exc.errors()[0]
        raise _reject(f"{first['msg']}", ".".join(map(str, first["loc"])) or "messages") from exc


def finish_reason(resp: AnswerResponse, max_tokens: int) -> Literal["stop", "length"]:
    """``length`` when the greedy answer filled its token budget (and was not replaced)."""
    if not resp.abstained and (resp.signals.n_tokens or 0) >= max_tokens:
        return "length"
    return "stop"


def to_chat_response(resp: AnswerResponse, abstain_message: str,
                     max_tokens: int) -> ChatCompletionResponse:
    """The OpenAI response: the answer, or the abstention message when the cascade abstains."""
    content = abstain_message if resp.abstained else resp.answer
    return ChatCompletionResponse(
        id=resp.id, created=int(time.time()), model=resp.model,
        choices=[ChatChoice(message=ChatMessageOut(content=content),
                            finish_reason=finish_reason(resp, max_tokens))],
        usage=resp.usage, uncertainty=resp,
    )


def chunk(rid: str, created: int, model: str, delta: dict[str, Any],
          finish: str | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk``."""
    return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                         "logprobs": None}]}


def final_chunk(chat: ChatCompletionResponse, created: int | None = None,
                live_text_sent: bool | None = None) -> dict[str, Any]:
    """The last chunk: ``finish_reason``, ``usage`` and ``uncertainty``. In live mode
    (``live_text_sent`` not None) an abstention's message is its content, after a blank
    line when text was already streamed."""
    delta: dict[str, Any] = {}
    if live_text_sent is not None and chat.uncertainty.abstained:
        sep = "\n\n" if live_text_sent else ""
        delta = {"content": sep + chat.choices[0].message.content}
    out = chunk(chat.id, chat.created if created is None else created, chat.model, delta,
                chat.choices[0].finish_reason)
    return {**out, "usage": chat.usage.model_dump(), "uncertainty": chat.uncertainty.model_dump()}


def to_stream_chunks(chat: ChatCompletionResponse) -> list[dict[str, Any]]:
    """Guarded ``stream=true``: the vetted text (the answer or the abstention message) in
    one chunk, then the final chunk (the cascade decides before anything is sent)."""
    first = chunk(chat.id, chat.created, chat.model,
                  {"role": "assistant", "content": chat.choices[0].message.content})
    return [first, final_chunk(chat)]
