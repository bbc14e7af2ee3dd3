"""Answer one request: plan it, generate the greedy answer, run the stage loop, respond.

The runner owns no policy and no maths: the plan (``plan.py``) fixes everything decided
before generation, the stages give signals, the confidence model turns them into a
confidence, the policy decides (``loop.py``). ``Answered`` carries the plan out with the
response, so the decision log and the OpenAI mapping read the same ``max_tokens``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from service import schemas
from service.cascade import routing
from service.cascade.loop import StageLoop, loop_deadline
from service.cascade.plan import Plan, after_scope, make_plan
from service.cascade.policy import Action, ConfidenceModel, PolicyChoice
from service.cascade.profiles import Profiles
from service.cascade.providers import OnDelta, Providers, TokenMeter
from service.cascade.stages import Stage
from service.claims.assess import ClaimCalibration, ClaimInputs, assess
from service.claims.split import RuleSplitter, Splitter
from service.config import Settings
from service.engine.protocol import Completion, Generation
from service.errors import DeadlineExceeded
from service.signals.base import SignalContext
from service.signals.normalize import normalize_answer
from service.vocab import no_promise


@dataclass(frozen=True)
class Answered:
    """A request's plan and its response."""

    plan: Plan
    response: schemas.AnswerResponse


@dataclass(frozen=True)
class Cascade:
    stages: tuple[Stage, ...]
    providers: Providers
    profiles: Profiles[ConfidenceModel]
    settings: Settings
    follow_pins: bool = True  # no max_tokens: the profile's pin (CANDOR_DEFAULT_MAX_TOKENS unset)
    splitter: Splitter = RuleSplitter()  # claims mode (service/claims/)

    async def plan(self, req: schemas.AnswerRequest) -> Plan:
        """Route the request to its profile by scope, then fix its plan (``make_plan``)."""
        # held for the whole request: a hot reload never changes it midway
        route = await routing.route(self.profiles.candidates(req.policy.profile, req.task),
                                    req.task, req.question, req.context, self.providers.embed)
        return make_plan(req, route, self.settings, self.follow_pins, len(self.stages))

    async def answer(self, req: schemas.AnswerRequest,
                     on_delta: OnDelta | None = None) -> Answered:
        """Run the cascade; ``on_delta`` (live streaming) receives the greedy pass as it is
        generated, and the stages then continue from its final completion."""
        plan = await self.plan(req)
        await self.providers.check_prompt(plan.messages, plan.max_tokens)
        t0 = time.perf_counter()
        greedy = await self._greedy(plan, on_delta)
        g_ms = (time.perf_counter() - t0) * 1000
        comp = greedy.completions[0]
        scope = plan.route.report(comp.text)
        choice, forced = after_scope(plan, scope)
        meter = TokenMeter()  # this request's own token count: nothing shared to leak
        loop = StageLoop(plan, choice.policy, forced, self._context(req, plan, comp, meter),
                         meter, g_ms, comp.n_tokens)
        await loop.run(self.stages)
        claims = await self._claims(req, plan, comp, loop.ctx, scope) if req.claims else None
        return Answered(plan, self._response(req, plan, choice, scope, loop, greedy, claims))

    async def _claims(self, req: schemas.AnswerRequest, plan: Plan, comp: Completion,
                      ctx: SignalContext, scope: schemas.ScopeReport) -> schemas.ClaimsReport:
        """Claims mode: the stage-1 samples (drawn now if the stage loop stopped before them,
        the request may reach stage 1, and support is read: uncalibrated, or by the claim
        map) give each claim its support; the profile's claim calibration, where it applies
        to this request, keeps what its promise covers."""
        calibration = plan.model.claims
        samples = ctx.samples
        wanted = calibration is None or calibration.needs_samples
        if samples is None and wanted and plan.stages.allowed >= 1 and ctx.has("samples"):
            try:
                async with asyncio.timeout_at(loop_deadline(plan.deadline)):
                    samples = await ctx.get_samples()
            except TimeoutError:
                samples = None  # the budget ran out: token signals only
        # the request's own embedding cache: a claim that is a whole sample is embedded once
        embeds = embeds_support(calibration)
        embed = (ctx.embed if embeds and plan.stages.allowed >= 2 and ctx.has("embedder")
                 else None)
        void = claims_void(req, plan, scope, self.splitter.name,
                           samples is not None and (embed is not None or not embeds),
                           calibration) if calibration is not None else None
        return await assess(ClaimInputs(req.question, comp.text, comp.tokens, plan.task,
                                        samples, embed, self.settings.cluster_similarity),
                            self.splitter, calibration, void)

    async def _greedy(self, plan: Plan, on_delta: OnDelta | None) -> Generation:
        try:
            async with asyncio.timeout_at(loop_deadline(plan.deadline)):
                return await self.providers.greedy(plan.messages, plan.max_tokens, plan.rid,
                                                   on_delta)
        except TimeoutError as exc:
            raise DeadlineExceeded(
                f"budget_ms={plan.budget_ms} ran out before the first answer was generated",
                param="policy.budget_ms",
            ) from exc

    def _context(self, req: schemas.AnswerRequest, plan: Plan, comp: Completion,
                 meter: TokenMeter) -> SignalContext:
        providers = self.providers.signal_providers(plan.messages, plan.rid, plan.max_tokens,
                                                    comp.text, plan.task, meter=meter)
        return SignalContext(
            question=req.question, task=plan.task, answer=comp.text,
            token_logprobs=[t.logprob for t in comp.tokens],
            top_logprobs=[list(t.top_logprobs) for t in comp.tokens],
            context=req.context, **providers)

    def _response(self, req: schemas.AnswerRequest, plan: Plan, choice: PolicyChoice,
                  scope: schemas.ScopeReport, loop: StageLoop, greedy: Generation,
                  claims: schemas.ClaimsReport | None) -> schemas.AnswerResponse:
        comp, model, trace = greedy.completions[0], plan.model, loop.trace
        decided = loop.decided
        assert decided is not None, "the stage loop always decides"
        completion = comp.n_tokens + loop.meter.total
        abstained = decided.action is Action.ABSTAIN
        return schemas.AnswerResponse(
            id=plan.rid, model=self.settings.model_name, answer=comp.text,
            abstained=abstained, decision="abstain" if abstained else "answer",
            reason=decided.reason if abstained else None,
            confidence=min(1.0, max(0.0, decided.confidence)),
            calibrated=model.calibrated, stage_reached=decided.stage, fallback=trace.fallback,
            signals=schemas.Signals.model_validate(trace.signals),
            stages=trace.reports, skipped=trace.skipped,
            calibration=schemas.CalibrationRef(
                calibrated=model.calibrated, id=model.id, profile=model.profile,
                target_risk=choice.target_risk, delta=model.delta,
                threshold=choice.policy.answer_threshold, reason=choice.reason,
            ),
            scope=scope, audit=plan.audit, audit_rate=plan.audit_rate,
            samples=_samples(loop.ctx.samples, trace.clusters, plan.task)
            if req.return_samples else None,
            logprobs=[
                schemas.TokenLogprob(token=t.token, logprob=t.logprob,
                                     top_logprobs=list(t.top_logprobs))
                for t in comp.tokens
            ] if req.return_logprobs else None,
            claims=claims,
            usage=schemas.Usage(
                prompt_tokens=greedy.prompt_tokens, completion_tokens=completion,
                total_tokens=greedy.prompt_tokens + completion,
            ),
        )


def _samples(samples: list[str] | None, clusters: list[int] | None,
             task: str) -> list[schemas.Sample] | None:
    """The samples with their clusters (the last sampling stage's; none ran: all 0)."""
    if samples is None:
        return None
    ids = clusters if clusters is not None else [0] * len(samples)
    return [schemas.Sample(text=s, normalized=normalize_answer(s, task), cluster=int(c))
            for s, c in zip(samples, ids, strict=True)]


def embeds_support(calibration: ClaimCalibration | None) -> bool:
    """Whether embedding matches count in a claim's support (stage 2 allowed): uncalibrated
    yes; calibrated only where the map's support was collected with them (``min_stage``
    2), so a served support is never read more loosely than the certified one."""
    return calibration is None or calibration.min_stage >= 2


def claims_void(req: schemas.AnswerRequest, plan: Plan, scope: schemas.ScopeReport,
                splitter: str, supported: bool, calibration: ClaimCalibration) -> str | None:
    """Why the profile's claim-level promise does not hold for this request (None: it
    does): the request is out of the profile's scope or untested, asks with other
    settings than the claims were calibrated with, or lacks what the map's support was
    read from (``supported``: the samples, and the embedder where support used it)."""
    if scope.tested and not scope.in_scope:
        return routing.out_of_scope_reason(plan.route, scope)
    if plan.route.untested is not None:
        return plan.route.untested
    mismatch = plan.model.request_mismatch(plan.max_tokens, req.system)
    if mismatch is not None:
        return mismatch
    if splitter != calibration.splitter:
        return no_promise("settings", f"the claims were calibrated as split by the "
                          f"{calibration.splitter!r} splitter, this server splits with "
                          f"{splitter!r}")
    if calibration.needs_samples and (plan.stages.allowed < calibration.min_stage
                                      or not supported):
        return no_promise("settings", "the claim map reads each claim's support as collected "
                          f"up to stage {calibration.min_stage} (the samples; from stage 2 also "
                          "their embeddings), which this request did not get (its max_stage "
                          f"is {plan.stages.allowed}, its budget ran out before the samples "
                          "were drawn, or no embedding model is loaded)")
    return None
