"""``POST /v1/feedback``: attach a correctness label to a logged decision (for recalibration).

The answer is sent only after the label is committed to the decision log, so an
acknowledged label is never lost (the sequence: ``CandorState.feedback``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api.deps import StateDep
from service.api.errors import documented_errors
from service.api.principal import principal
from service.schemas import FeedbackRequest, FeedbackResponse

router = APIRouter(
    prefix="/v1", tags=["feedback"],
    responses=documented_errors(400, 404, 413, 422, 429, 504),
)


@router.post("/feedback", response_model=FeedbackResponse)
async def feedback(req: FeedbackRequest, request: Request, state: StateDep) -> FeedbackResponse:
    """Label the decision ``id`` correct or not; 404 when the id is not in the log."""
    return await state.feedback(req.id, req.correct, principal(request).labeller)
