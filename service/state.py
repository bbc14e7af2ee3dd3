"""The app's runtime: engine lifecycle, admission control and metrics around the cascade."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from service import schemas
from service.admission import EngineQueue, Limiter, admission_pools, engine_queue, gate
from service.admission.gate import admitted, planned_passes
from service.calibration.artifact import CalibratedModel
from service.calibration.pinning import ServingSettings, serving_settings
from service.calibration.profiles import parse_sources, screen
from service.cascade.plan import budget_ms_for, max_stage_for
from service.cascade.profiles import Profiles
from service.cascade.providers import EarlyStopSampling, OnDelta, Providers
from service.cascade.runner import Answered, Cascade
from service.cascade.score import score as score_answers
from service.cascade.stages import Stage, default_stages
from service.config import Settings
from service.decisions.log import DecisionLog
from service.decisions.records import LabelledDecision
from service.engine.protocol import EngineClient
from service.errors import (
    BadRequest,
    CalibrationError,
    CandorError,
    Draining,
    EngineUnavailable,
    NotFound,
)
from service.metrics import Metrics
from service.monitoring.hub import Monitoring
from service.monitoring.ledger import AuditLedger
from service.monitoring.refresh import MonitorRefresher
from service.reload import load_calibration, pin_check, reload_reply, validate_reload
from service.signals.base import ContextProviders, Entailer, TextEncoder

log = logging.getLogger(__name__)


@dataclass
class CandorState:
    settings: Settings
    metrics: Metrics
    profiles: Profiles[CalibratedModel]
    stages: tuple[Stage, ...] = field(default_factory=default_stages)
    engine: EngineClient | None = None
    embedder: TextEncoder | None = None
    nli: Entailer | None = None
    load_error: str | None = None
    cascade: Cascade | None = None
    decision_log: DecisionLog | None = None
    monitoring: Monitoring | None = None
    monitor_refresh: MonitorRefresher | None = None  # a shared log: the monitors' source
    base_settings: Settings | None = None  # before the artifacts' pins (a reload re-pins)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    limiters: dict[str, Limiter] = field(default_factory=dict)
    queue: EngineQueue | None = None  # the engine queue (None: CANDOR_ADMISSION=fixed)
    draining: bool = False  # SIGTERM: /readyz says 503 (service/drain.py)
    admitting: bool = True  # False once draining refuses new work

    def __post_init__(self) -> None:
        if not self.limiters:
            self.limiters = admission_pools(self.settings, self.metrics)
            self.queue = engine_queue(self.settings, self.metrics)

    @property
    def inflight(self) -> int:
        return self.limiters["answers"].inflight

    def busy(self) -> int:
        """Requests running in any pool (answers, score, feedback)."""
        return sum(pool.inflight for pool in self.limiters.values())

    def stop_admitting(self) -> None:
        """A drain's second step: new answers and scores, and the requests still queued for
        their first engine call, get 503 ``draining``; what runs goes on."""
        self.admitting = False
        if self.queue is not None:
            self.queue.close(_draining)

    def _check_admitting(self) -> None:
        if not self.admitting:
            raise _draining()

    @classmethod
    def build(cls, settings: Settings, metrics: Metrics | None = None,
              profiles: Profiles[CalibratedModel] | None = None) -> CandorState:
        base = settings
        if profiles is None:  # a bad artifact named by CANDOR_CALIBRATION fails here
            profiles, settings = load_calibration(settings)
        metrics = metrics or Metrics()
        metrics.set_calibration(profiles)
        monitoring = Monitoring(metrics, settings.audit_rate, settings.monitor_level,
                                settings.monitor_min_labels, settings.drift_window)
        monitoring.activate(profiles.models.values())
        return cls(settings=settings, metrics=metrics, profiles=profiles,
                   stages=default_stages(settings.cluster_similarity), monitoring=monitoring,
                   base_settings=base)

    def serving(self) -> ServingSettings:
        """The serving settings the signals depend on (pinned by calibration artifacts)."""
        return serving_settings(self.settings, self._template())

    # -- lifecycle ---------------------------------------------------------------------------
    def attach(self, engine: EngineClient, embedder: TextEncoder | None = None,
               nli: Entailer | None = None) -> None:
        """Wire a loaded engine (and optional embedder/NLI) into a ready cascade."""
        s = self.settings
        self._check_template(engine.chat_template_hash)
        self.engine, self.embedder, self.nli = engine, embedder, nli
        providers = Providers(
            engine=gate(engine, self.queue, self.metrics), top_logprobs=s.top_logprobs,
            samples_n=s.samples_n,
            sample_temperature=s.sample_temperature, sample_max_tokens=s.sample_max_tokens,
            max_model_len=s.max_model_len, max_question_chars=s.max_question_chars,
            early_stop=EarlyStopSampling(s.samples_round, s.samples_confidence)
            if s.samples_adaptive else None,
            embed=embedder.encode if embedder else None,
            nli=nli.entail_probs if nli else None,
        )
        operator = self.base_settings or s  # before the artifacts' pins
        self.cascade = Cascade(stages=self.stages, providers=providers, profiles=self.profiles,
                               settings=s,
                               follow_pins="default_max_tokens" not in operator.model_fields_set)

    def _check_template(self, template: str | None) -> None:
        """The chat template is known only once the engine is up: an artifact pinned to
        another is refused (named paths) or not served (the shipped profiles)."""
        if template is None or not self.profiles.models:
            return
        strict = parse_sources(self.settings.calibration)[1]
        try:
            kept, skipped = screen(self.profiles.models.items(),
                                   pin_check(self.settings, template), strict)
        except CalibrationError as exc:
            raise CalibrationError(f"the engine does not match: {exc.message}") from exc
        for line in skipped:
            log.warning("shipped calibration profile not served: %s", line)
        if skipped:
            self._set_profiles(Profiles({m.spec.profile: m for m in kept},
                                        self.profiles.uncalibrated,
                                        self.profiles.skipped + tuple(skipped)))

    def _template(self) -> str | None:
        return self.engine.chat_template_hash if self.engine is not None else None

    async def ready(self) -> bool:
        return self.cascade is not None and self.engine is not None and await self.engine.health()

    def _require_cascade(self) -> Cascade:
        if self.cascade is None:
            detail = f": {self.load_error}" if self.load_error else " (still loading)"
            raise EngineUnavailable(f"the engine is not ready{detail}",
                                    headers={"Retry-After": "5"})
        return self.cascade

    # -- requests ----------------------------------------------------------------------------
    async def answer(self, req: schemas.AnswerRequest, endpoint: str,
                     on_delta: OnDelta | None = None) -> Answered:
        cascade = self._require_cascade()
        self._check_admitting()
        t0 = time.perf_counter()
        async with self.limiters["answers"].slot(), self._admitted(req):
            out = await cascade.answer(req, on_delta)
        resp = out.response
        self.metrics.observe_answer(endpoint, resp, time.perf_counter() - t0)
        if self.monitoring is not None:
            self.monitoring.observe_decision(resp)
        if self.decision_log is not None:  # queued; the writer thread does the I/O
            self.decision_log.record(resp, req, endpoint, self.serving(), out.plan.max_tokens)
        return out

    def _admitted(self, req: schemas.AnswerRequest) -> AbstractAsyncContextManager[object]:
        """The engine queue's admission of ``req`` (a 429 when it cannot be served in its
        budget); nothing more under fixed admission (the answers pool is the limit)."""
        if self.queue is None:
            return contextlib.nullcontext()
        s = self.settings
        plan = planned_passes(max_stage_for(req.policy, s), req.max_tokens or s.max_tokens_limit,
                              s.samples_n,
                              s.sample_max_tokens)  # tokens: capped by what passes generate
        return admitted(self.queue, budget_ms_for(req, s) / 1000.0, plan)

    async def score(self, req: schemas.ScoreRequest) -> schemas.ScoreResponse:
        limit = self.settings.max_score_samples
        if req.samples is not None and len(req.samples) > limit:
            raise BadRequest(f"{len(req.samples)} samples; max_score_samples is {limit}",
                             param="samples")
        providers = ContextProviders(
            embed_provider=self.embedder.encode if self.embedder else None,
            nli_provider=self.nli.entail_probs if self.nli else None,
        )
        self._check_admitting()
        t0 = time.perf_counter()
        async with self.limiters["score"].slot():
            resp = await score_answers(req, self.stages, self.profiles, providers)
        self.metrics.observe_score(time.perf_counter() - t0)
        return resp

    async def feedback(self, answer_id: str, correct: bool,
                       labeller: str) -> schemas.FeedbackResponse:
        """Label the logged decision ``answer_id`` (``labeller``: who sent it). Answered only
        once the label is committed, so an acknowledged label is never lost: a slot of the
        feedback pool (429 + Retry-After beyond it), the decision log's commit (504 past its
        deadline, 503 while it cannot write), then the counters and live monitors. 404 when
        the server keeps no log or the id is not in it."""
        dlog = self.decision_log
        if dlog is None:
            raise NotFound("this server keeps no decision log (CANDOR_DECISION_LOG is unset)",
                           param="id")
        async with self.limiters["feedback"].slot():
            row = await dlog.feedback(answer_id, correct, labeller)
        if row is None:
            raise NotFound(f"no logged decision with id {answer_id!r}", param="id")
        self.observe_label(row)
        return schemas.FeedbackResponse(id=answer_id, stored=True, audited=row.audit)

    def observe_label(self, row: LabelledDecision) -> None:
        """A committed label: the feedback counter and the live promise monitors."""
        self.metrics.observe_feedback(row.audit)
        if self.monitoring is not None:
            self.monitoring.observe_label(row)

    # -- live monitoring and hot reload --------------------------------------------------------
    async def restore_monitoring(self) -> None:
        """Rebuild the monitors from the decision log (startup: a restart loses nothing).
        A log shared by replicas is the monitors' only source: read in full now, then
        refreshed by ``monitor_refresh`` every ``CANDOR_MONITOR_REFRESH_S`` (the lifespan
        runs it; ``monitoring/refresh.py``)."""
        dlog = self.decision_log
        if self.monitoring is None or dlog is None:
            return
        if dlog.shared:
            s = self.settings
            self.monitoring.from_log = True
            self.monitor_refresh = MonitorRefresher(
                dlog, self.monitoring, AuditLedger(s.audit_rate, dlog.retention_s),
                self.metrics, s.monitor_refresh_s, s.drift_window)
            await self.monitor_refresh.refresh()  # a failure is logged; retried next interval
            return
        counts = await asyncio.to_thread(dlog.audit_counts, self.settings.audit_rate)
        recent = []
        for m in self.profiles.models.values():
            if m.id is None:  # an uncalibrated model has no decisions of its own to replay
                continue
            recent += await asyncio.to_thread(dlog.recent_decisions, m.id,
                                              self.settings.drift_window)
        self.monitoring.restore(counts, recent)

    def _set_profiles(self, profiles: Profiles[CalibratedModel],
                      settings: Settings | None = None) -> None:
        """One synchronous swap: a request sees the old profiles or the new ones."""
        self.profiles = profiles
        if settings is not None:
            self.settings = settings
        s = self.settings
        if self.cascade is not None:
            self.cascade = dataclasses.replace(self.cascade, profiles=profiles, settings=s)
        self.metrics.set_calibration(profiles)
        if self.monitoring is not None:
            self.monitoring.activate(profiles.models.values())

    async def reload_calibration(self, source: str | None = None,
                                 by: str = "SIGHUP") -> schemas.ReloadResponse:
        """Validate the profiles ``source`` names, then make them exactly the active set.

        ``source`` reads like CANDOR_CALIBRATION (``builtin``, ``none``, paths) and comes
        from a client: its paths must lie inside CANDOR_CALIBRATION_DIR
        (``reload.reload_sources``). ``None`` re-reads CANDOR_CALIBRATION (SIGHUP, and a
        reload with no body). Nothing active before survives unless the source names it
        again. A refused source raises (``ArtifactRejected``, ``PathRefused``) and changes
        nothing; a request in flight finishes on the profiles it started with
        (``Cascade.answer`` holds them). Returns what changed (``ReloadResponse``).
        """
        base = self.base_settings or self.settings
        async with self._reload_lock:
            template = self._template()
            try:
                profiles, settings, loaded = await asyncio.to_thread(
                    validate_reload, source, base, template)
            except CandorError as exc:
                self.metrics.reloads.labels(outcome="rejected").inc()
                log.error("calibration reload (%s) refused (kept %s): %s", by,
                          ", ".join(self.ids()) or "none", exc.message)
                raise
            before = self.ids()
            self._set_profiles(profiles, settings)
            after = self.ids()
            self.metrics.reloads.labels(outcome="ok").inc()
        reply = reload_reply(before, after, loaded, profiles.skipped)
        log.info("calibration reloaded (%s, source %s): %s -> %s; added %s, removed %s, "
                 "replaced %s", by, loaded, before or "none", after or "none",
                 reply.added, reply.removed, reply.replaced)
        return reply

    def ids(self) -> dict[str, str]:
        return {n: str(m.id) for n, m in self.profiles.models.items()}


def _draining() -> Draining:
    return Draining("this replica is shutting down and takes no new work; retry (another "
                    "replica takes it)")
