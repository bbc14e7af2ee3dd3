"""OpenAI chat-completions models and their mapping onto the cascade (docs/api.md).

A chat request becomes one ``AnswerRequest``: system/developer messages become the
system prompt, the last message must be the user's question. Earlier user/assistant
turns are rejected (400, ``param="messages"``): the cascade scores one question, and
folding a transcript into it would change what its confidence is about. ``n`` must be 1.
``temperature`` and ``top_p`` are accepted and have no effect: the answer is always the
greedy one and the samples use the server's temperature. ``model`` is accepted; the
served model answers. Candor's own options ride along as extra body fields
(``policy``, ``task``, ``context``, ``stream_mode``), e.g. the OpenAI SDK's ``extra_body``.

Every other parameter, of the request, of a message or of a content part (``tools``,
``tool_choice``, ``functions``, ``function_call``, ``response_format``, ``stop``,
``logprobs``, ``seed``, ``user``, ...), is one Candor does not implement: a request that
sets one gets a 400 ``invalid_request_error`` naming it (``param``), never a silent
no-op. A value that asks for nothing (null, false, 0, ``""``, ``[]``, ``{}``) is the same
as leaving the parameter out, so clients that send every parameter with a null default
keep working.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from service.api_types import Bool, Int, Number, Text
from service.errors import BadRequest
from service.schemas import AnswerRequest, AnswerResponse, PolicyIn, Usage
from service.vocab import Task

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
StreamMode = Literal["guarded", "live"]

_TOOLS = "it answers one question and calls no tools or functions"
_LOGPROBS = "use /v1/answer with return_logprobs=true for log-probabilities"
# Why the better-known OpenAI parameters are not implemented (any other gets no reason).
_WHY = {
    "tools": _TOOLS, "tool_choice": _TOOLS, "functions": _TOOLS, "function_call": _TOOLS,
    "parallel_tool_calls": _TOOLS, "tool_calls": _TOOLS, "tool_call_id": _TOOLS,
    "response_format": "the answer is free text, and its confidence is about that text",
    "logprobs": _LOGPROBS, "top_logprobs": _LOGPROBS,
    "stop": "a stop sequence would cut the answer the cascade scores",
    "seed": "the answer is the greedy one, the same for every seed",
    "frequency_penalty": "the answer is the greedy one the cascade was calibrated on",
    "presence_penalty": "the answer is the greedy one the cascade was calibrated on",
    "logit_bias": "the answer is the greedy one the cascade was calibrated on",
    "audio": "Candor answers in text", "modalities": "Candor answers in text",
}


def _asks_nothing(value: Any) -> bool:
    """null, false, 0, "", [] and {}: the same as leaving the parameter out."""
    if value is None or value is False:
        return True
    if isinstance(value, str | list | dict):
        return not value
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


class _OpenAIModel(BaseModel):
    """Unknown keys are kept (``model_extra``) so that ``not_implemented`` can refuse them
    by name with a 400, instead of a 422 or silence."""

    model_config = ConfigDict(extra="allow")

    def not_implemented(self, prefix: str = "") -> Iterator[str]:
        """The dotted path of every unknown key set to something that asks for something."""
        for key, value in (self.model_extra or {}).items():
            if not _asks_nothing(value):
                yield f"{prefix}{key}"


class TextPart(_OpenAIModel):
    type: Literal["text"]
    text: Text


_text = TypeAdapter(Text)
_parts = TypeAdapter(list[TextPart])


def _content(value: Any, _union: ValidatorFunctionWrapHandler) -> Any:
    # Dispatch on the JSON type rather than try each branch of the union, so an error names
    # the content or its part ("messages.0.content", "messages.0.content.1.text"), not a
    # branch ("messages.0.content.list[TextPart]"); the union stays for the schema.
    if value is None:
        return None
    if isinstance(value, str):
        return _text.validate_python(value)
    if isinstance(value, list):
        return _parts.validate_python(value)
    raise PydanticCustomError("content_type",
                              "Input should be a string, an array of text parts, or null")


class ChatMessageIn(_OpenAIModel):
    role: Role
    content: Annotated[Text | list[TextPart] | None, WrapValidator(_content)] = None
    name: Text | None = Field(default=None, description="Accepted; no effect.")

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)

    def not_implemented(self, prefix: str = "") -> Iterator[str]:
        yield from super().not_implemented(prefix)
        if isinstance(self.content, list):
            for i, part in enumerate(self.content):
                yield from part.not_implemented(f"{prefix}content.{i}.")


class StreamOptions(_OpenAIModel):
    include_usage: Bool | None = Field(
        default=None, description="Accepted: usage always rides on the final chunk.")


class ChatCompletionRequest(_OpenAIModel):
    """The OpenAI parameters Candor implements, plus its own options. Any other parameter
    (tools, tool_choice, functions, function_call, response_format, stop, logprobs, seed,
    user, ...) set to a value that asks for something (not null, false, 0, "", [] or {}) is
    refused: 400 naming it."""

    model: Text | None = Field(default=None, description="Accepted: the served model answers.")
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_tokens: Int | None = Field(default=None, ge=1)
    max_completion_tokens: Int | None = Field(default=None, ge=1)
    temperature: Number | None = Field(default=None, ge=0, le=2,
                                       description="Accepted; no effect (greedy answer).")
    top_p: Number | None = Field(default=None, ge=0, le=1,
                                 description="Accepted; no effect (greedy answer).")
    n: Int | None = Field(default=1, description="Must be 1 (or null).")
    stream: Bool | None = Field(default=False,
                                description="true: server-sent events (stream_mode).")
    stream_options: StreamOptions | None = None
    stream_mode: StreamMode = Field(
        default="guarded",
        description="With stream=true. guarded: the text is held until the cascade has "
        "decided, then sent with the verdict (an abstention sends only the abstention "
        "message). live: tokens as the engine generates them, then a last chunk with the "
        "verdict (uncertainty; on abstention the abstention message as its content).")
    # Candor extensions (extra_body in the OpenAI SDK)
    policy: PolicyIn = Field(default_factory=PolicyIn)
    task: Task = "auto"
    context: Text | None = None
    claims: Bool = Field(
        default=False, description="Claims mode (as /v1/answer's claims): uncertainty.claims "
        "lists the answer's claims with their confidences and the claim-level promise.")

    def not_implemented(self, prefix: str = "") -> Iterator[str]:
        yield from super().not_implemented(prefix)
        for i, message in enumerate(self.messages):
            yield from message.not_implemented(f"messages.{i}.")
        if self.stream_options is not None:
            yield from self.stream_options.not_implemented("stream_options.")


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: str | None = Field(
        default=None, description="On abstention the abstention message (also the content): "
        "OpenAI's field for a model that declines, so an OpenAI client detects an abstention "
        "without reading uncertainty. null when Candor answers.")


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


def not_implemented(param: str) -> BadRequest:
    """The one refusal of a parameter Candor does not implement."""
    why = _WHY.get(param.rsplit(".", 1)[-1])
    return _reject(f"Candor does not implement the OpenAI parameter {param!r}"
                   + (f" ({why})" if why else "") + "; leave it out or send null", param)


def to_answer_request(req: ChatCompletionRequest) -> AnswerRequest:
    """Map a chat request onto the cascade's request, or raise ``BadRequest`` saying why."""
    for param in req.not_implemented():
        raise not_implemented(param)
    if req.n not in (None, 1):
        raise _reject("n must be 1: Candor returns one answer with its confidence", "n")
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
            claims=req.claims,
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
    refusal = abstain_message if resp.abstained else None
    return ChatCompletionResponse(
        id=resp.id, created=int(time.time()), model=resp.model,
        choices=[ChatChoice(message=ChatMessageOut(content=content, refusal=refusal),
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
        message = chat.choices[0].message
        delta = {"content": sep + message.content, "refusal": message.refusal}
    out = chunk(chat.id, chat.created if created is None else created, chat.model, delta,
                chat.choices[0].finish_reason)
    return {**out, "usage": chat.usage.model_dump(), "uncertainty": chat.uncertainty.model_dump()}


def to_stream_chunks(chat: ChatCompletionResponse) -> list[dict[str, Any]]:
    """Guarded ``stream=true``: the vetted text (the answer or the abstention message) in
    one chunk, then the final chunk (the cascade decides before anything is sent)."""
    message = chat.choices[0].message
    first = chunk(chat.id, chat.created, chat.model,
                  {"role": "assistant", "content": message.content,
                   **({"refusal": message.refusal} if message.refusal else {})})
    return [first, final_chunk(chat)]
