"""``POST /v1/answer`` and ``POST /v1/score``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.api.deps import StateDep
from service.api.errors import documented_errors
from service.api.headers import answer_headers, score_headers
from service.api.principal import check_audit_override
from service.schemas import (
    AnswerRequest,
    AnswerResponse,
    ScoreRequest,
    ScoreResponse,
)

ERRORS = documented_errors(400, 403, 413, 422, 429, 500, 503, 504)

router = APIRouter(prefix="/v1", tags=["answer"], responses=ERRORS)


@router.post("/answer", response_model=AnswerResponse)
async def answer(req: AnswerRequest, request: Request, response: Response,
                 state: StateDep) -> AnswerResponse:
    """Answer a question with a confidence; abstain (HTTP 200) when the cascade is unsure."""
    check_audit_override(req.policy.audit_rate, request, state.settings.audit_rate)
    out = (await state.answer(req, endpoint="/v1/answer")).response
    response.headers.update(answer_headers(out))
    return out


@router.post("/score", response_model=ScoreResponse)
async def score(req: ScoreRequest, response: Response, state: StateDep) -> ScoreResponse:
    """Uncertainty signals for an answer the caller already has; nothing is generated."""
    out = await state.score(req)
    response.headers.update(score_headers(out))
    return out
