"""``/v1/score``: the cascade's signals for answers a caller already has, without generating."""

from __future__ import annotations

import time

from service import schemas
from service.cascade import routing
from service.cascade.policy import ConfidenceModel
from service.cascade.profiles import Profiles
from service.cascade.stages import Stage
from service.cascade.trace import Trace
from service.errors import BadRequest
from service.signals.base import ContextProviders, MissingInput, SignalContext


def _missing(stage: Stage, ctx: SignalContext) -> list[str]:
    return [need for need in stage.signal.requires if not ctx.has(need)]


async def score(
    req: schemas.ScoreRequest, stages: tuple[Stage, ...], profiles: Profiles[ConfidenceModel],
    ctx_providers: ContextProviders,
) -> schemas.ScoreResponse:
    if req.top_logprobs is not None and req.token_logprobs is None:
        raise BadRequest("top_logprobs needs token_logprobs", param="top_logprobs")
    try:
        candidates = profiles.candidates(req.profile, req.task)
    except BadRequest as exc:  # the profile is a top-level field here, not policy.profile
        raise BadRequest(exc.message, param="profile") from exc
    route = await routing.route(candidates, req.task,
                                req.question, req.context, ctx_providers["embed_provider"])
    model, task = route.model, route.task
    ctx = SignalContext(
        question=req.question, task=task, answer=req.answer,
        token_logprobs=req.token_logprobs, top_logprobs=req.top_logprobs,
        samples=req.samples or None, context=req.context, **ctx_providers,
    )
    trace = Trace()
    any_conf = False
    for stage in stages:
        missing = _missing(stage, ctx)
        if missing:
            trace.skipped.append(f"{stage.name}: missing {', '.join(missing)}")
            continue
        t0 = time.perf_counter()
        try:
            res = await stage.signal.score(ctx)
        except MissingInput as exc:
            trace.skipped.append(f"{stage.name}: missing {exc}")
            continue
        if res.confidence is None and not res.informative and stage.spec.optional:
            trace.skipped.append(f"{stage.name}: {res.note}")
            continue
        trace.add(stage, res, (time.perf_counter() - t0) * 1000, 0, model)
        any_conf = any_conf or res.informative
    return schemas.ScoreResponse(
        confidence=trace.confidence if any_conf else None,
        calibrated=model.calibrated,
        profile=model.profile,
        scope=route.report(req.answer),
        signals=schemas.Signals.model_validate(trace.signals),
        stages=trace.reports,
        skipped=trace.skipped,
    )
