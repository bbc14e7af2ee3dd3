"""Which profile decides a request, and whether its promise applies: routing by scope.

Each candidate profile's scope test (``ScopeCheck``) gives the request a conformal
p-value before anything is generated (its text, its embedding). The request goes to the
profile that accepts it (p >= its level) with the largest p-value; when none accepts, to
the nearest one, without a promise. Once the greedy answer is known, the chosen profile's
test is completed with it (``Route.report``): a request whose answer is unlike the calibration
answers (a paragraph against one-line completions) is out of scope too.

The arithmetic regex (``normalize.resolve_task``) only picks the prompt's instruction and
the answer normalisation of a request no profile accepts; it never grants a promise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from service import schemas
from service.cascade.policy import ConfidenceModel
from service.signals.normalize import resolve_task
from service.vocab import no_promise

EmbedAsync = Callable[[list[str]], Awaitable[np.ndarray]]


@dataclass(frozen=True)
class Route:
    """The routing decision for one request (before generation)."""

    model: ConfidenceModel
    task: str  # the task the prompt and normalisation use
    stat: float | None = None  # the chosen model's request-side scope statistic
    p_request: float | None = None
    candidates: dict[str, float] = field(default_factory=dict)
    untested: str | None = None  # why no scope test ran for a calibrated model

    def report(self, answer: str) -> schemas.ScopeReport:
        """The scope report: the full test's p-value, with the greedy ``answer``."""
        scope = self.model.scope
        if scope is None or self.stat is None:
            return schemas.ScopeReport(tested=False, profile=self.model.profile,
                                       candidates=self.candidates)
        p = scope.p_full(self.stat, answer)
        return schemas.ScopeReport(tested=True, profile=self.model.profile, p_value=round(p, 4),
                                   level=scope.level, in_scope=p >= scope.level,
                                   candidates=self.candidates)


def own_task(model: ConfidenceModel, hint: str) -> str:
    """A profile covering exactly one task prompts and normalises as that task."""
    return model.tasks[0] if len(model.tasks) == 1 else hint


async def route(candidates: Sequence[ConfidenceModel], task: str, question: str,
                context: str | None, embed: EmbedAsync | None) -> Route:
    """The profile among ``candidates`` that decides, by the scope tests' p-values; the
    request's ``task`` (``auto``: the regex's hint) where no profile's own task applies."""
    hint = resolve_task(task, question)
    tested = [m for m in candidates if m.scope is not None]
    if not tested:  # uncalibrated, or artifacts without a scope test
        model = candidates[0]
        why = None if not model.calibrated else no_promise(
            "no_scope", f"calibration {model.id} has no scope test (fitted without question "
            "texts or by an older Candor), so no request is known to be like its calibration "
            "set; recalibrate with `candor calibrate` to get a promise")
        return Route(model, own_task(model, hint) if model.calibrated else hint, untested=why)
    texts = {m.profile: m.scope.text(question, context) for m in tested if m.scope}
    need = sorted({texts[m.profile] for m in tested if m.scope and m.scope.needs_embedding})
    if need and embed is None:
        model = tested[0]
        return Route(model, hint, untested=no_promise(
            "no_scope", "the scope test needs the embedding model, which this server has not "
            "loaded"))
    vecs = dict(zip(need, await embed(need), strict=True)) if need and embed else {}
    stats: dict[str | None, tuple[float, float]] = {}
    for m in tested:
        assert m.scope is not None
        text = texts[m.profile]
        try:
            stat = m.scope.request_stat(text, vecs.get(text))
        except ValueError as exc:  # another embedding model than the one pinned
            return Route(m, hint, untested=no_promise(
                "no_scope", f"calibration {m.id}'s scope test cannot run here: {exc}"))
        stats[m.profile] = (stat, m.scope.p_request(stat))
    ps = {str(name): round(p, 4) for name, (_, p) in stats.items()}
    accepted = [m for m in tested if m.scope and stats[m.profile][1] >= m.scope.level]
    best = max(accepted or tested, key=lambda m: stats[m.profile][1])
    stat, p = stats[best.profile]
    return Route(best, own_task(best, hint) if accepted else hint, stat, p, ps)


def out_of_scope_reason(route: Route, report: schemas.ScopeReport) -> str:
    """Why a request tested out of scope gets no promise (machine word first)."""
    level = report.level or 0.0
    p_req = route.p_request if route.p_request is not None else 0.0
    if p_req >= level:
        where = (f"its answer is unlike the answers calibration profile {report.profile} was "
                 f"calibrated on (p = {report.p_value:g} < level {level:g}, e.g. far longer)")
    elif len(route.candidates) > 1:
        where = (f"the request is outside the scope of every calibration profile; the nearest "
                 f"is {report.profile} (p = {report.p_value:g} < level {level:g})")
    else:
        where = (f"the request is outside the scope of calibration profile {report.profile} "
                 f"(p = {report.p_value:g} < level {level:g})")
    return no_promise("out_of_scope", f"{where}; it is not drawn like the questions the "
                      "promise was calibrated on, so no error rate is promised")
