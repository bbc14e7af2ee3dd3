"""``POST /v1/feedback``: attach a correctness label to a logged decision (for recalibration).

The answer is sent only after the label is committed to the decision log, so an
acknowledged label is never lost.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api.deps import StateDep
from service.api.errors import documented_errors
from service.api.principal import principal
from service.errors import NotFound
from service.schemas import FeedbackRequest, FeedbackResponse

router = APIRouter(
    prefix="/v1", tags=["feedback"],
    responses=documented_errors(400, 404, 413, 422, 429, 504),
)


@router.post("/feedback", response_model=FeedbackResponse)
async def feedback(req: FeedbackRequest, request: Request, state: StateDep) -> FeedbackResponse:
    """Label the decision ``id`` correct or not; 404 when the id is not in the log."""
    dlog = state.decision_log
    if dlog is None:
        raise NotFound("this server keeps no decision log (CANDOR_DECISION_LOG is unset)",
                       param="id")
    async with state.limiters["feedback"].slot():  # 429 + Retry-After beyond the pool
        row = await dlog.feedback(req.id, req.correct, principal(request).labeller)
    if row is None:
        raise NotFound(f"no logged decision with id {req.id!r}", param="id")
    state.observe_label(row)
    return FeedbackResponse(id=req.id, stored=True, audited=row.audit)
