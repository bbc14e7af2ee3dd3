"""``POST /v1/chat/completions``: OpenAI-compatible, plus a top-level ``uncertainty`` object.

The request goes through the same cascade as ``/v1/answer`` (metrics label
``/v1/chat/completions``); the mapping rules live in ``service/openai_schemas.py``, the
two stream modes in ``service/api/streaming.py``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from service.api.answer import ERRORS
from service.api.deps import StateDep
from service.api.headers import answer_headers
from service.api.principal import check_audit_override
from service.api.streaming import chat_stream
from service.openai_schemas import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    to_answer_request,
    to_chat_response,
)

router = APIRouter(prefix="/v1", tags=["openai"], responses=ERRORS)


@router.post(
    "/chat/completions", response_model=ChatCompletionResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "JSON, or server-sent events when stream=true"}},
)
async def chat_completions(
    req: ChatCompletionRequest, request: Request, response: Response, state: StateDep
) -> ChatCompletionResponse | StreamingResponse:
    """Answer the last user message; abstentions carry the configured abstention message."""
    check_audit_override(req.policy.audit_rate, request, state.settings.audit_rate)
    answer_req = to_answer_request(req)
    message = state.settings.abstain_message
    if req.stream:
        return await chat_stream(state, answer_req, req.stream_mode, message)
    out = await state.answer(answer_req, endpoint="/v1/chat/completions")
    response.headers.update(answer_headers(out.response))
    return to_chat_response(out.response, message, out.plan.max_tokens)
