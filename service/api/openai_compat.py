"""``POST /v1/chat/completions``: OpenAI-compatible, plus a top-level ``uncertainty`` object.

The request goes through the same cascade as ``/v1/answer`` (metrics label
``/v1/chat/completions``); the mapping rules live in ``service/openai_schemas.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from service.api.answer import ERRORS
from service.api.deps import StateDep
from service.openai_schemas import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    to_answer_request,
    to_chat_response,
    to_stream_chunks,
)

router = APIRouter(prefix="/v1", tags=["openai"], responses=ERRORS)


@router.post(
    "/chat/completions", response_model=ChatCompletionResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "JSON, or server-sent events when stream=true"}},
)
async def chat_completions(
    req: ChatCompletionRequest, state: StateDep
) -> ChatCompletionResponse | StreamingResponse:
    """Answer the last user message; abstentions carry the configured abstention message."""
    answer_req = to_answer_request(req)
    resp = await state.answer(answer_req, endpoint="/v1/chat/completions")
    max_tokens = answer_req.max_tokens or state.settings.default_max_tokens
    chat = to_chat_response(resp, state.settings.abstain_message, max_tokens)
    if not req.stream:
        return chat
    return StreamingResponse(_sse(chat), media_type="text/event-stream")


def _sse(chat: ChatCompletionResponse) -> Iterator[str]:
    for chunk in to_stream_chunks(chat):
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"
