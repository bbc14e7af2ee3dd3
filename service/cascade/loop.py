"""The stage loop of one request: stages in order, cheapest first, until the policy decides.

An audited request runs on to ``plan.stages.allowed`` for the record; its decision stays
the sequential policy's, taken at the first stage that did not escalate. An abstention
below the abstain threshold before the last stage the request may run is ``hopeless``,
whether or not the stages after it could move the confidence. A forced reason
(``out_of_scope``) abstains after stage 0, whatever the confidence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.cascade.plan import Plan
from service.cascade.policy import Action, Policy
from service.cascade.providers import TokenMeter
from service.cascade.stages import Stage
from service.cascade.trace import Decided, Trace
from service.signals.base import MissingInput, SignalContext
from service.vocab import AbstainReason


def loop_deadline(perf_deadline: float) -> float:
    """A ``time.perf_counter()`` deadline on the event loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + max(0.0, perf_deadline - time.perf_counter())


@dataclass
class StageLoop:
    plan: Plan
    policy: Policy  # after the scope test (``plan.after_scope``)
    forced: AbstainReason | None  # abstain after stage 0, whatever the confidence
    ctx: SignalContext
    meter: TokenMeter  # this request's own extra tokens
    greedy_ms: float  # the greedy pass, counted in stage 0's cost
    greedy_tokens: int
    trace: Trace = field(default_factory=Trace)
    decided: Decided | None = None

    async def run(self, stages: Sequence[Stage]) -> Decided:
        for stage in stages[: self.plan.stages.run_to + 1]:
            if not await self._step(stage):
                break
        if self.decided is None:  # every stage left was skipped: decide on the last one
            action = self.policy.decide(self.plan.stages.run_to, self.trace.confidence)
            reason: AbstainReason | None = "low_confidence" if action is Action.ABSTAIN else None
            self.decided = Decided(action, reason, self.trace.last_stage, self.trace.confidence)
        return self.decided

    async def _step(self, stage: Stage) -> bool:
        """Run one stage and fold it in; False when the loop stops here."""
        before, t0 = self.meter.total, time.perf_counter()
        try:
            async with asyncio.timeout_at(loop_deadline(self.plan.deadline)):
                res = await stage.signal.score(self.ctx)
        except TimeoutError:
            self.trace.skipped.append(f"{stage.name}: deadline (budget_ms={self.plan.budget_ms})")
            if self.decided is None:
                self.decided = self._abstain("deadline", self.trace.last_stage)
            return False
        except MissingInput as exc:
            self.trace.skipped.append(f"{stage.name}: missing {exc}")
            return True
        first = stage.index == 0
        ms = (time.perf_counter() - t0) * 1000 + (self.greedy_ms if first else 0.0)
        tokens = self.meter.total - before + (self.greedy_tokens if first else 0)
        self.trace.add(stage, res, ms, tokens, self.plan.model)
        if self.decided is not None:  # audit-only stage: recorded, not decided on
            self.trace.annotate("audit: ran after the decision, for the record")
            return True
        if first and self.trace.signals.get("n_tokens") == 0:
            self.decided = self._abstain("empty_answer", 0)
            return False
        self.decided = self._decide(stage.index)
        return self.decided is None or self.plan.audit

    def _decide(self, index: int) -> Decided | None:
        """The policy's decision after stage ``index`` (None: escalate)."""
        if self.forced is not None:
            return self._abstain(self.forced, index)
        confidence = self.trace.confidence
        action = self.policy.decide(index, confidence)
        if self.plan.run_all and index < self.plan.stages.run_to:
            action = Action.ESCALATE
        if action is Action.ESCALATE:
            return None
        if action is Action.ANSWER:
            return Decided(action, None, index, confidence)
        hopeless = (index < self.plan.stages.allowed
                    and confidence < self.policy.abstain_threshold)
        return self._abstain("hopeless" if hopeless else "low_confidence", index)

    def _abstain(self, reason: AbstainReason, stage: int) -> Decided:
        return Decided(Action.ABSTAIN, reason, stage, self.trace.confidence)
