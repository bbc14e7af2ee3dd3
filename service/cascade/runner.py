"""Run the cascade for one request: stages in order, stop early, record everything.

The runner owns no policy and no maths: stages give signals, the confidence model
turns them into a confidence, the policy decides. Stage 1 and 2 evidence that is
uninformative (homogeneous samples) never raises the confidence: the stage keeps the
confidence it inherited (the stage-0 fallback) and the response says so; unless the
calibration fitted its maps on such questions too, and so measured what a single
cluster says for this model (``fits_homogeneous``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from service import schemas
from service.audit import audited
from service.calibration.profiles import Profiles
from service.cascade import routing
from service.cascade.policy import Action, ConfidenceModel, Policy, PolicyChoice
from service.cascade.providers import (
    OnDelta,
    Providers,
    TokenMeter,
    build_messages,
    with_instruction,
)
from service.cascade.stages import MAX_STAGE, STAGE_CONF_KEYS, Stage
from service.engine.protocol import ChatMessage, Generation
from service.errors import BadRequest, DeadlineExceeded
from service.signals.base import MissingInput, SignalContext, SignalResult
from service.signals.normalize import normalize_answer


@dataclass
class Trace:
    """What the cascade did, stage by stage (the response is built from it)."""

    reports: list[schemas.StageReport] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    signals: dict[str, object] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    confidence: float = 0.0
    fallback: str | None = None


def add_result(trace: Trace, stage: Stage, res: SignalResult, ms: float, tokens: int,
               model: ConfidenceModel) -> None:
    """Fold one stage's result into the trace (pure bookkeeping, shared with /v1/score)."""
    trace.signals.update({k: v for k, v in res.values.items() if v is not None})
    for k, v in res.values.items():
        if isinstance(v, bool):
            trace.features[k] = float(v)
        elif isinstance(v, int | float):
            trace.features[k] = float(v)
    note = res.note
    weighed = not res.informative and stage.spec.sampling and model.fits_homogeneous
    if (res.informative or weighed) and res.confidence is not None:
        trace.features[STAGE_CONF_KEYS[stage.index]] = float(res.confidence)
        trace.confidence = model.confidence(stage.index, trace.features)
        if weighed:  # the calibration measured what a single cluster says for this model
            note = (note or "uninformative") + "; the calibrated map weighs it"
    elif stage.spec.sampling:
        trace.fallback = "token"
        note = (note or "uninformative") + "; confidence falls back on stage 0"
    trace.reports.append(
        schemas.StageReport(
            name=stage.name, stage=stage.index, confidence=trace.confidence, ms=round(ms, 2),
            tokens=tokens, informative=res.informative, note=note,
        )
    )


@dataclass
class Decided:
    """The sequential policy's decision: fixed at the first stage that did not escalate."""

    action: Action
    reason: str | None
    stage: int
    confidence: float


@dataclass
class Cascade:
    stages: tuple[Stage, ...]
    providers: Providers
    profiles: Profiles
    default_max_stage: int
    default_max_tokens: int
    max_tokens_limit: int
    max_budget_ms: int
    model_name: str
    audit_rate: float = 0.0
    profile_max_tokens: bool = False  # a request without max_tokens gets its profile's pin
    math_instruction: str | None = None
    out_of_scope: str = "abstain"  # CANDOR_OUT_OF_SCOPE

    def choose_policy(self, req: schemas.AnswerRequest, max_stage: int, max_tokens: int,
                      model: ConfidenceModel) -> PolicyChoice:
        """The policy and the promise for this request; every way to lose the promise named
        (the scope test's verdict comes after generation: ``_scoped``)."""
        choice = model.policy(req.policy.target_risk, max_stage)
        policy, risk, why = choice.policy, choice.target_risk, choice.reason
        if req.policy.answer_threshold is not None or req.policy.abstain_threshold is not None:
            hi = _pick(req.policy.answer_threshold, policy.answer_threshold)
            lo = min(_pick(req.policy.abstain_threshold, policy.abstain_threshold), hi)
            policy = Policy(hi, lo, max_stage)
            if risk is not None:
                risk, why = None, ("thresholds: caller-set answer/abstain thresholds replace "
                                   "the calibrated ones, so no error rate is promised")
        if req.policy.run_all and risk is not None:
            risk, why = None, ("run_all: every stage runs and the decision is taken on the "
                               "final confidence, not by the calibrated sequential policy")
        mismatch = model.request_mismatch(max_tokens, req.system)
        if mismatch is not None and risk is not None:
            risk, why = None, mismatch
        return PolicyChoice(policy, risk, why)

    async def plan(self, req: schemas.AnswerRequest) -> Plan:
        """Everything decided about a request before generation, once (``Plan``)."""
        # held for the whole request: a hot reload never changes it midway
        route = await routing.route(self.profiles.candidates(req.policy.profile, req.task),
                                    req.task, req.question, req.context, self.providers.embed)
        model = route.model
        pinned = model.answer_max_tokens if self.profile_max_tokens else None
        max_tokens = req.max_tokens or pinned or self.default_max_tokens
        if max_tokens > self.max_tokens_limit:
            raise BadRequest(f"max_tokens must be <= {self.max_tokens_limit}", param="max_tokens")
        asked = min(
            self.default_max_stage,
            req.policy.max_stage if req.policy.max_stage is not None else MAX_STAGE,
            len(self.stages) - 1,
        )
        # stages past the model's last own map cannot change a decision: decide there
        decide_at = asked if req.policy.run_all else min(asked, model.decision_stage)
        choice = self.choose_policy(req, decide_at, max_tokens, model)
        if route.untested is not None and choice.target_risk is not None:
            choice = PolicyChoice(choice.policy, None, route.untested)
        rid = f"ans_{uuid.uuid4().hex[:24]}"
        # the server's draw (service/audit.py); an admin may only raise the rate
        audit_rate = max(self.audit_rate, req.policy.audit_rate or 0.0)
        audit = audited(rid, audit_rate)
        budget_ms = min(req.policy.budget_ms or self.max_budget_ms, self.max_budget_ms)
        return Plan(
            rid=rid, route=route, choice=choice,
            max_tokens=max_tokens, asked=asked, decide_at=decide_at,
            run_to=asked if audit else decide_at,  # audited: every stage, for the record
            audit=audit, audit_rate=audit_rate, budget_ms=budget_ms,
            deadline=time.perf_counter() + budget_ms / 1000.0,
            out_of_scope=req.policy.out_of_scope or self.out_of_scope,
            messages=build_messages(
                with_instruction(req.question, route.task, self.math_instruction),
                req.system, req.context))

    async def answer(self, req: schemas.AnswerRequest,
                     on_delta: OnDelta | None = None) -> schemas.AnswerResponse:
        """Run the cascade; ``on_delta`` (live streaming) receives the greedy pass as it is
        generated, and the stages then continue from its final completion."""
        plan = await self.plan(req)
        await self.providers.check_prompt(plan.messages, plan.max_tokens)
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout_at(_loop_deadline(plan.deadline)):
                greedy = await self.providers.greedy(plan.messages, plan.max_tokens, plan.rid,
                                                     on_delta)
        except TimeoutError as exc:
            raise DeadlineExceeded(
                f"budget_ms={plan.budget_ms} ran out before the first answer was generated",
                param="policy.budget_ms",
            ) from exc
        g_ms = (time.perf_counter() - t0) * 1000
        comp = greedy.completions[0]
        scope = plan.route.report(comp.text)
        choice, forced = _scoped(plan, scope)
        meter = TokenMeter()  # this request's own token count: nothing shared to leak
        ctx = SignalContext(
            question=req.question, task=plan.route.task, answer=comp.text,
            token_logprobs=[t.logprob for t in comp.tokens],
            top_logprobs=[list(t.top_logprobs) for t in comp.tokens],
            context=req.context,
            **self.providers.signal_providers(plan.messages, plan.rid, plan.max_tokens,
                                              comp.text, plan.route.task, meter=meter),
        )
        trace = Trace()
        decided = await self._run_stages(ctx, trace, plan, choice.policy, meter,
                                         (g_ms, comp.n_tokens), req.policy.run_all, forced)
        return self._response(req, plan, choice, scope, decided, trace, ctx, greedy,
                              meter.total)

    def _response(self, req: schemas.AnswerRequest, plan: Plan, choice: PolicyChoice,
                  scope: schemas.ScopeReport, decided: Decided, trace: Trace,
                  ctx: SignalContext, greedy: Generation, extra_tokens: int,
                  ) -> schemas.AnswerResponse:
        comp, model = greedy.completions[0], plan.route.model
        completion = comp.n_tokens + extra_tokens
        abstained = decided.action is Action.ABSTAIN
        return schemas.AnswerResponse(
            id=plan.rid,
            model=self.model_name,
            answer=comp.text,
            abstained=abstained,
            decision="abstain" if abstained else "answer",
            reason=decided.reason if abstained else None,
            confidence=min(1.0, max(0.0, decided.confidence)),
            calibrated=model.calibrated,
            stage_reached=decided.stage,
            fallback=trace.fallback,
            signals=schemas.Signals.model_validate(trace.signals),
            stages=trace.reports,
            skipped=trace.skipped,
            calibration=schemas.CalibrationRef(
                calibrated=model.calibrated, id=model.id, profile=model.profile,
                target_risk=choice.target_risk, delta=model.delta,
                threshold=choice.policy.answer_threshold, reason=choice.reason,
            ),
            scope=scope,
            audit=plan.audit,
            audit_rate=plan.audit_rate,
            samples=_samples(ctx, plan.route.task) if req.return_samples else None,
            logprobs=[
                schemas.TokenLogprob(token=t.token, logprob=t.logprob,
                                     top_logprobs=list(t.top_logprobs))
                for t in comp.tokens
            ] if req.return_logprobs else None,
            usage=schemas.Usage(
                prompt_tokens=greedy.prompt_tokens, completion_tokens=completion,
                total_tokens=greedy.prompt_tokens + completion,
            ),
        )

    async def _run_stages(self, ctx: SignalContext, trace: Trace, plan: Plan, policy: Policy,
                          meter: TokenMeter, greedy_cost: tuple[float, int], run_all: bool,
                          forced: str | None) -> Decided:
        """Stages in order until the policy decides; an audited request runs on to
        ``plan.asked`` for the record (its decision stays the sequential policy's). An
        abstention below the abstain threshold before the last stage the request asked
        for is ``hopeless``, whether or not the stages after it could move the confidence.
        ``forced`` (``out_of_scope``) abstains after stage 0, whatever the confidence."""
        max_stage, asked, audit, model = plan.run_to, plan.asked, plan.audit, plan.route.model
        g_ms, g_tokens = greedy_cost
        deadline, budget_ms = plan.deadline, plan.budget_ms
        decided: Decided | None = None
        for stage in self.stages[: max_stage + 1]:
            before = meter.total
            ts = time.perf_counter()
            try:
                async with asyncio.timeout_at(_loop_deadline(deadline)):
                    res = await stage.signal.score(ctx)
            except TimeoutError:
                trace.skipped.append(f"{stage.name}: deadline (budget_ms={budget_ms})")
                if decided is None:
                    decided = Decided(Action.ABSTAIN, "deadline", _last_stage(trace),
                                      trace.confidence)
                break
            except MissingInput as exc:
                trace.skipped.append(f"{stage.name}: missing {exc}")
                continue
            ms = (time.perf_counter() - ts) * 1000 + (g_ms if stage.index == 0 else 0.0)
            tokens = meter.total - before
            tokens += g_tokens if stage.index == 0 else 0
            add_result(trace, stage, res, ms, tokens, model)
            if decided is not None:  # audit-only stage: recorded, not decided on
                trace.reports[-1].note = _join(trace.reports[-1].note,
                                               "audit: ran after the decision, for the record")
                continue
            if stage.index == 0 and trace.signals.get("n_tokens") == 0:
                return Decided(Action.ABSTAIN, "empty_answer", 0, trace.confidence)
            if forced is not None:
                decided = Decided(Action.ABSTAIN, forced, stage.index, trace.confidence)
                if not audit:
                    break
                continue
            action = policy.decide(stage.index, trace.confidence)
            if run_all and stage.index < max_stage:
                action = Action.ESCALATE
            if action is not Action.ESCALATE:
                hopeless = (stage.index < asked
                            and trace.confidence < policy.abstain_threshold)
                reason = None if action is Action.ANSWER else (
                    "hopeless" if hopeless else "low_confidence")
                decided = Decided(action, reason, stage.index, trace.confidence)
                if not audit:
                    break
        if decided is None:  # every stage left was skipped: decide on the last confidence
            action = policy.decide(max_stage, trace.confidence)
            decided = Decided(action, "low_confidence" if action is Action.ABSTAIN else None,
                              _last_stage(trace), trace.confidence)
        return decided


@dataclass(frozen=True)
class Plan:
    """What is decided about a request before generation, once, and read by every step
    after (the profile and task by scope, the promise, the limits, the audit draw)."""

    rid: str
    route: routing.Route
    choice: PolicyChoice  # before the scope test's final verdict (``_scoped``)
    max_tokens: int
    asked: int  # the highest stage the request may run
    decide_at: int  # the stage the decision is taken at, at the latest
    run_to: int  # the stage the cascade runs to (audited: ``asked``, for the record)
    audit: bool
    audit_rate: float
    budget_ms: int
    deadline: float  # time.perf_counter() deadline
    out_of_scope: str  # "abstain" | "serve"
    messages: list[ChatMessage]


def _scoped(plan: Plan, scope: schemas.ScopeReport) -> tuple[PolicyChoice, str | None]:
    """The promise after the scope test, and the abstain reason it forces (if any)."""
    if not scope.tested or scope.in_scope:
        return plan.choice, None
    why = routing.out_of_scope_reason(plan.route, scope)
    choice = PolicyChoice(plan.choice.policy, None, why)
    return choice, ("out_of_scope" if plan.out_of_scope == "abstain" else None)


def _pick(value: float | None, default: float) -> float:
    return default if value is None else value


def _last_stage(trace: Trace) -> int:
    return trace.reports[-1].stage if trace.reports else 0


def _join(note: str | None, extra: str) -> str:
    return f"{note}; {extra}" if note else extra


def _loop_deadline(perf_deadline: float) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + max(0.0, perf_deadline - time.perf_counter())


def _samples(ctx: SignalContext, task: str) -> list[schemas.Sample] | None:
    if ctx.samples is None:
        return None
    memo: Mapping[str, object] = ctx._memo
    labels = memo.get("semantic_labels")
    if isinstance(labels, list):
        ids = labels[1:]
    else:
        stats = memo.get("consistency_stats")
        ids = getattr(stats, "clusters", [0] * len(ctx.samples))
    return [
        schemas.Sample(text=s, normalized=normalize_answer(s, task), cluster=int(c))
        for s, c in zip(ctx.samples, ids, strict=True)
    ]
