"""The app's runtime: engine lifecycle, admission control and metrics around the cascade."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service import schemas
from service.admission import Limiter, admission_pools
from service.calibration.pinning import ServingSettings, compare, serving_settings
from service.cascade.policy import ConfidenceModel, UncalibratedModel
from service.cascade.providers import AdaptiveSampling, OnDelta, Providers
from service.cascade.runner import Cascade
from service.cascade.score import score as score_answers
from service.cascade.stages import Stage, default_stages
from service.config import Settings
from service.decision_log import DecisionLog, Labelled
from service.engine.protocol import EngineClient
from service.errors import ArtifactRejected, BadRequest, CalibrationError, EngineUnavailable
from service.metrics import Metrics
from service.monitoring.hub import Monitoring
from service.reload import validate_artifact

log = logging.getLogger(__name__)


def check_pinned(settings: Settings, model: ConfidenceModel) -> Settings:
    """Refuse an artifact whose pinned serving settings differ from these (naming each);
    requests without ``max_tokens`` get the calibrated one unless it was set explicitly."""
    spec = getattr(model, "spec", None)
    if spec is None:
        return settings
    pinned = spec.settings
    refuse, warn = compare(pinned, serving_settings(settings), check_template=False)
    if refuse:
        raise CalibrationError(
            f"calibration artifact {model.id} was fitted under other serving settings; "
            f"{'; '.join(refuse)}. Serve with the calibrated settings or recalibrate")
    for line in warn:
        log.warning("calibration %s: %s", model.id, line)
    if "default_max_tokens" not in settings.model_fields_set:
        limit = max(settings.max_tokens_limit, pinned.answer_max_tokens)
        return settings.model_copy(update={"default_max_tokens": pinned.answer_max_tokens,
                                           "max_tokens_limit": limit})
    if settings.default_max_tokens != pinned.answer_max_tokens:
        log.warning("calibration %s: CANDOR_DEFAULT_MAX_TOKENS=%d differs from the calibrated "
                    "%d: requests without max_tokens carry no promise", model.id,
                    settings.default_max_tokens, pinned.answer_max_tokens)
    return settings


@dataclass
class CandorState:
    settings: Settings
    metrics: Metrics
    model: ConfidenceModel
    stages: tuple[Stage, ...] = field(default_factory=default_stages)
    engine: EngineClient | None = None
    embedder: object | None = None
    nli: object | None = None
    load_error: str | None = None
    cascade: Cascade | None = None
    decision_log: DecisionLog | None = None
    monitoring: Monitoring | None = None
    base_settings: Settings | None = None  # before an artifact's pins (a reload re-pins)
    calibration_path: Path | None = None  # what a reload (and SIGHUP) re-reads
    _serving_base: dict[str, object] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    limiters: dict[str, Limiter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.limiters:
            self.limiters = admission_pools(self.settings, self.metrics)

    @property
    def inflight(self) -> int:
        return self.limiters["answers"].inflight

    @classmethod
    def build(cls, settings: Settings, metrics: Metrics | None = None,
              model: ConfidenceModel | None = None) -> CandorState:
        base = settings
        if model is None and settings.calibration is not None:  # a bad artifact fails here
            from service.calibration.artifact import load_artifact

            model = load_artifact(settings.calibration, expected_model=settings.model_name,
                                  fallback=(settings.answer_threshold,
                                            settings.abstain_threshold))
            settings = check_pinned(settings, model)
        model = model or UncalibratedModel(settings.answer_threshold, settings.abstain_threshold)
        metrics = metrics or Metrics()
        metrics.set_calibration(model.id, getattr(model, "default_target_risk", None))
        monitoring = Monitoring(metrics, settings.monitor_level, settings.monitor_min_labels,
                                settings.drift_window)
        monitoring.activate(model)
        return cls(settings=settings, metrics=metrics, model=model,
                   stages=default_stages(settings.cluster_similarity), monitoring=monitoring,
                   base_settings=base, calibration_path=settings.calibration)

    def serving(self) -> ServingSettings:
        """The serving settings the signals depend on (pinned by calibration artifacts)."""
        return serving_settings(self.settings, getattr(self.engine, "chat_template_hash", None))

    def serving_json(self, req: schemas.AnswerRequest, cascade: Cascade) -> str:
        """One decision's serving settings, as logged (``--from-log`` pins its artifact to
        them); a system prompt is kept only as a hash unless ``log_text`` is set."""
        if self._serving_base is None:
            self._serving_base = self.serving().model_dump()
        system = req.system
        if system and not self.settings.log_text:
            system = "sha256:" + hashlib.sha256(system.encode()).hexdigest()[:16]
        return json.dumps({**self._serving_base, "system_prompt": system or None,
                           "answer_max_tokens": req.max_tokens or cascade.default_max_tokens})

    # -- lifecycle ---------------------------------------------------------------------------
    def attach(self, engine: EngineClient, embedder: object | None = None,
               nli: object | None = None) -> None:
        """Wire a loaded engine (and optional embedder/NLI) into a ready cascade."""
        s = self.settings
        spec = getattr(self.model, "spec", None)
        if spec is not None:  # the chat template is known only once the engine is up
            refuse, warn = compare(spec.settings, serving_settings(
                s, getattr(engine, "chat_template_hash", None)))
            for line in warn:
                log.warning("calibration %s: %s", self.model.id, line)
            if refuse:
                raise CalibrationError(f"calibration artifact {self.model.id} does not match "
                                       f"the engine: {'; '.join(refuse)}")
        self.engine, self.embedder, self.nli = engine, embedder, nli
        self._serving_base = None
        providers = Providers(
            engine=engine, top_logprobs=s.top_logprobs, samples_n=s.samples_n,
            sample_temperature=s.sample_temperature, sample_max_tokens=s.sample_max_tokens,
            max_model_len=s.max_model_len, max_question_chars=s.max_question_chars,
            adaptive=AdaptiveSampling(s.samples_round, s.samples_confidence)
            if s.samples_adaptive else None,
            embed=getattr(embedder, "encode", None), nli=getattr(nli, "entail_probs", None),
        )
        self.cascade = Cascade(
            stages=self.stages, providers=providers, model=self.model,
            default_max_stage=s.max_stage, default_max_tokens=s.default_max_tokens,
            max_tokens_limit=s.max_tokens_limit, max_budget_ms=s.max_budget_ms,
            model_name=s.model_name, audit_rate=s.audit_rate,
        )

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
                     on_delta: OnDelta | None = None) -> schemas.AnswerResponse:
        cascade = self._require_cascade()
        t0 = time.perf_counter()
        async with self.limiters["answers"].slot():
            resp = await cascade.answer(req, on_delta)
        self.metrics.observe_answer(endpoint, resp, time.perf_counter() - t0)
        if self.monitoring is not None:
            self.monitoring.observe_decision(resp)
        if self.decision_log is not None:  # queued; the writer thread does the I/O
            self.decision_log.record(resp, req, endpoint, self.serving_json(req, cascade))
        return resp

    async def score(self, req: schemas.ScoreRequest) -> schemas.ScoreResponse:
        limit = self.settings.max_score_samples
        if req.samples is not None and len(req.samples) > limit:
            raise BadRequest(f"{len(req.samples)} samples; max_score_samples is {limit}",
                             param="samples")
        providers = {
            "embed_provider": getattr(self.embedder, "encode", None),
            "nli_provider": getattr(self.nli, "entail_probs", None),
        }
        t0 = time.perf_counter()
        async with self.limiters["score"].slot():
            resp = await score_answers(req, self.stages, self.model, providers)
        self.metrics.observe_score(time.perf_counter() - t0)
        return resp

    def observe_label(self, row: Labelled) -> None:
        """A committed label: the feedback counter and the live promise monitors."""
        self.metrics.observe_feedback(row.audit)
        if self.monitoring is not None:
            self.monitoring.observe_label(row)

    # -- live monitoring and hot reload --------------------------------------------------------
    async def restore_monitoring(self) -> None:
        """Rebuild the monitors from the decision log (startup: a restart loses nothing)."""
        if self.monitoring is None or self.decision_log is None:
            return
        from service.monitoring.restore import audit_counts, recent_decisions, sqlite_path

        path, active = sqlite_path(self.decision_log.url), self.model.id
        if path is None:
            log.warning("live monitors start empty: rebuilding them reads a SQLite decision "
                        "log, not %s", type(self.decision_log._store).__name__)
            return
        counts = await asyncio.to_thread(audit_counts, path)
        recent = (await asyncio.to_thread(recent_decisions, path, active,
                                          self.settings.drift_window) if active else [])
        self.monitoring.restore(counts, recent)

    async def reload_calibration(self, path: Path | None = None) -> dict[str, Any]:
        """Validate ``path`` (default: the artifact loaded last), then swap it in atomically.

        A refused artifact raises ``ArtifactRejected`` and changes nothing. The swap is one
        synchronous step on the event loop: a request sees the old cascade or the new one,
        and one in flight finishes on the artifact it started with (``Cascade.answer``
        holds its model).
        """
        target = path or self.calibration_path
        if target is None:
            raise BadRequest("no calibration artifact to reload: the server was started "
                             "without CANDOR_CALIBRATION; send {\"path\": ...}", param="path")
        async with self._reload_lock:
            try:
                model, settings = await asyncio.to_thread(
                    validate_artifact, Path(target), self.base_settings or self.settings,
                    self.engine, check_pinned)
            except ArtifactRejected as exc:
                self.metrics.reloads.labels(outcome="rejected").inc()
                log.error("calibration reload refused (kept %s): %s", self.model.id, exc.message)
                raise
            previous = self.model.id
            self.settings, self.model, self.calibration_path = settings, model, Path(target)
            self._serving_base = None
            if self.cascade is not None:
                self.cascade = dataclasses.replace(
                    self.cascade, model=model, default_max_tokens=settings.default_max_tokens,
                    max_tokens_limit=settings.max_tokens_limit)
            self.metrics.set_calibration(model.id, getattr(model, "default_target_risk", None))
            if self.monitoring is not None:
                self.monitoring.activate(model)
            self.metrics.reloads.labels(outcome="ok").inc()
        log.info("calibration reloaded: %s -> %s (%s)", previous, model.id, target)
        return {"reloaded": True, "id": model.id, "previous_id": previous,
                "profile": getattr(model, "profile", None), "path": str(target)}
