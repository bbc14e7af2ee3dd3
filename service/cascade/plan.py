"""Everything decided about a request before generation, once: the ``Plan``.

Built from the request, the profile that routing chose and the server's settings, then
read by every step after it (the stage loop, the response, the decision log, the OpenAI
mapping). Each concept has one home here: the answer's ``max_tokens`` (``max_tokens_for``),
the stages (``StageBounds``), the promise (``choose_policy``), the audit draw, the deadline.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from service import schemas
from service.audit import audited
from service.cascade import routing
from service.cascade.policy import ConfidenceModel, Policy, PolicyChoice
from service.cascade.providers import build_messages, with_instruction
from service.config import Settings
from service.engine.protocol import ChatMessage
from service.errors import BadRequest
from service.vocab import MAX_STAGE, AbstainReason, OutOfScope, no_promise


@dataclass(frozen=True)
class StageBounds:
    """The three stage numbers of a request, each with one meaning."""

    allowed: int  # the highest stage the request may run (settings, policy.max_stage)
    decide_at: int  # the stage the decision is taken at, at the latest
    run_to: int  # the stage the cascade runs to (audited: ``allowed``, for the record)


@dataclass(frozen=True)
class Plan:
    """What is decided about a request before generation (frozen: read, never changed)."""

    rid: str
    route: routing.Route  # the profile (confidence model) and the task, by scope
    choice: PolicyChoice  # the policy and promise before the scope test's final verdict
    max_tokens: int  # the answer's token limit: the one value generated, judged and logged
    stages: StageBounds
    run_all: bool  # every stage runs; decided on the final confidence (no promise)
    audit: bool  # the server's draw (service/audit.py)
    audit_rate: float
    budget_ms: int
    deadline: float  # time.perf_counter() deadline
    out_of_scope: OutOfScope
    messages: list[ChatMessage]

    @property
    def model(self) -> ConfidenceModel:
        return self.route.model

    @property
    def task(self) -> str:
        return self.route.task


def max_tokens_for(requested: int | None, model: ConfidenceModel, settings: Settings,
                   follow_pins: bool) -> int:
    """The answer's ``max_tokens``: the request's, else its profile's calibrated pin (unless
    the operator set CANDOR_DEFAULT_MAX_TOKENS: ``follow_pins`` False), else the default."""
    pinned = model.answer_max_tokens if follow_pins else None
    max_tokens = requested or pinned or settings.default_max_tokens
    if max_tokens > settings.max_tokens_limit:
        raise BadRequest(f"max_tokens must be <= {settings.max_tokens_limit}",
                         param="max_tokens")
    return max_tokens


def max_stage_for(policy: schemas.PolicyIn, settings: Settings) -> int:
    """The last stage a request may run: its own ``max_stage``, at most the server's."""
    asked = policy.max_stage if policy.max_stage is not None else MAX_STAGE
    return min(settings.max_stage, asked)


def stage_bounds(policy: schemas.PolicyIn, model: ConfidenceModel, settings: Settings,
                 n_stages: int, audit: bool) -> StageBounds:
    allowed = min(max_stage_for(policy, settings), n_stages - 1)
    # stages past the model's last own map cannot change a decision: decide there
    decide_at = allowed if policy.run_all else min(allowed, model.decision_stage)
    return StageBounds(allowed, decide_at, allowed if audit else decide_at)


def choose_policy(req: schemas.AnswerRequest, decide_at: int, max_tokens: int,
                  model: ConfidenceModel) -> PolicyChoice:
    """The policy and the promise for this request; every way to lose the promise named
    (the scope test's verdict comes after generation: ``after_scope``)."""
    choice = model.policy(req.policy.target_risk, decide_at)
    policy, risk, why = choice.policy, choice.target_risk, choice.reason
    if req.policy.answer_threshold is not None or req.policy.abstain_threshold is not None:
        hi = _pick(req.policy.answer_threshold, policy.answer_threshold)
        lo = min(_pick(req.policy.abstain_threshold, policy.abstain_threshold), hi)
        policy = Policy(hi, lo, decide_at)
        if risk is not None:
            risk, why = None, no_promise("thresholds", "caller-set answer/abstain thresholds "
                                         "replace the calibrated ones, so no error rate is "
                                         "promised")
    if req.policy.run_all and risk is not None:
        risk, why = None, no_promise("run_all", "every stage runs and the decision is taken "
                                     "on the final confidence, not by the calibrated "
                                     "sequential policy")
    mismatch = model.request_mismatch(max_tokens, req.system)
    if mismatch is not None and risk is not None:
        risk, why = None, mismatch
    return PolicyChoice(policy, risk, why)


def budget_ms_for(req: schemas.AnswerRequest, settings: Settings) -> int:
    """The request's budget: its own ``budget_ms``, at most ``CANDOR_MAX_BUDGET_MS``."""
    return min(req.policy.budget_ms or settings.max_budget_ms, settings.max_budget_ms)


def make_plan(req: schemas.AnswerRequest, route: routing.Route, settings: Settings,
              follow_pins: bool, n_stages: int) -> Plan:
    """The request's plan, from the route routing chose (``routing.route``)."""
    model = route.model
    max_tokens = max_tokens_for(req.max_tokens, model, settings, follow_pins)
    rid = f"ans_{uuid.uuid4().hex[:24]}"
    # the server's draw (service/audit.py); an admin may only raise the rate
    audit_rate = max(settings.audit_rate, req.policy.audit_rate or 0.0)
    audit = audited(rid, audit_rate)
    bounds = stage_bounds(req.policy, model, settings, n_stages, audit)
    choice = choose_policy(req, bounds.decide_at, max_tokens, model)
    if route.untested is not None and choice.target_risk is not None:
        choice = PolicyChoice(choice.policy, None, route.untested)
    budget_ms = budget_ms_for(req, settings)
    question = with_instruction(req.question, route.task, settings.math_instruction or None)
    return Plan(
        rid=rid, route=route, choice=choice, max_tokens=max_tokens, stages=bounds,
        run_all=req.policy.run_all, audit=audit, audit_rate=audit_rate, budget_ms=budget_ms,
        deadline=time.perf_counter() + budget_ms / 1000.0,
        out_of_scope=req.policy.out_of_scope or settings.out_of_scope,
        messages=build_messages(question, req.system, req.context))


def after_scope(plan: Plan, scope: schemas.ScopeReport,
                ) -> tuple[PolicyChoice, AbstainReason | None]:
    """The promise after the scope test, and the abstain reason it forces (if any)."""
    if not scope.tested or scope.in_scope:
        return plan.choice, None
    why = routing.out_of_scope_reason(plan.route, scope)
    choice = PolicyChoice(plan.choice.policy, None, why)
    return choice, ("out_of_scope" if plan.out_of_scope == "abstain" else None)


def _pick(value: float | None, default: float) -> float:
    return default if value is None else value
