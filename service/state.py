"""The app's runtime: engine lifecycle, admission control and metrics around the cascade."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from service import schemas
from service.admission import Limiter, admission_pools
from service.calibration.pinning import ServingSettings, serving_settings, system_hash
from service.calibration.profiles import Profiles, parse_sources
from service.cascade.providers import AdaptiveSampling, OnDelta, Providers
from service.cascade.runner import Cascade
from service.cascade.score import score as score_answers
from service.cascade.stages import Stage, default_stages
from service.config import Settings
from service.decision_log import DecisionLog, Labelled
from service.engine.protocol import EngineClient
from service.errors import BadRequest, CalibrationError, CandorError, EngineUnavailable
from service.metrics import Metrics
from service.monitoring.hub import Monitoring
from service.reload import load_calibration, pin_check, validate_reload
from service.signals.base import ContextProviders

log = logging.getLogger(__name__)


@dataclass
class CandorState:
    settings: Settings
    metrics: Metrics
    profiles: Profiles
    stages: tuple[Stage, ...] = field(default_factory=default_stages)
    engine: EngineClient | None = None
    embedder: object | None = None
    nli: object | None = None
    load_error: str | None = None
    cascade: Cascade | None = None
    decision_log: DecisionLog | None = None
    monitoring: Monitoring | None = None
    base_settings: Settings | None = None  # before the artifacts' pins (a reload re-pins)
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
              profiles: Profiles | None = None) -> CandorState:
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
        return serving_settings(self.settings, getattr(self.engine, "chat_template_hash", None))

    def serving_json(self, req: schemas.AnswerRequest, cascade: Cascade) -> str:
        """One decision's serving settings, as logged (``--from-log`` pins its artifact to
        them); a system prompt is kept only as a hash unless ``log_text`` is set."""
        if self._serving_base is None:
            self._serving_base = self.serving().model_dump()
        system = req.system
        if system and not self.settings.log_text:
            system = system_hash(system)
        return json.dumps({**self._serving_base, "system_prompt": system or None,
                           "answer_max_tokens": req.max_tokens or cascade.default_max_tokens})

    # -- lifecycle ---------------------------------------------------------------------------
    def attach(self, engine: EngineClient, embedder: object | None = None,
               nli: object | None = None) -> None:
        """Wire a loaded engine (and optional embedder/NLI) into a ready cascade."""
        s = self.settings
        self._check_template(getattr(engine, "chat_template_hash", None))
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
            stages=self.stages, providers=providers, profiles=self.profiles,
            default_max_stage=s.max_stage, default_max_tokens=s.default_max_tokens,
            max_tokens_limit=s.max_tokens_limit, max_budget_ms=s.max_budget_ms,
            model_name=s.model_name, audit_rate=s.audit_rate,
            profile_max_tokens="default_max_tokens" not in s.model_fields_set,
            math_instruction=s.math_instruction or None, out_of_scope=s.out_of_scope,
        )

    def _check_template(self, template: str | None) -> None:
        """The chat template is known only once the engine is up: an artifact pinned to
        another is refused (named paths) or not served (the shipped profiles)."""
        if template is None or not self.profiles.models:
            return
        check, kept, skipped = pin_check(self.settings, template), [], []
        strict = parse_sources(self.settings.calibration)[1]
        for m in self.profiles.models.values():
            try:
                check(m)
                kept.append(m)
            except CalibrationError as exc:
                if strict:
                    raise CalibrationError(f"the engine does not match: {exc.message}") from exc
                log.warning("shipped calibration profile not served: %s", exc.message)
                skipped.append(f"{m.spec.profile}: {exc.message}")
        if skipped:
            self._set_profiles(Profiles({m.spec.profile: m for m in kept},
                                        self.profiles.uncalibrated,
                                        self.profiles.skipped + tuple(skipped)))

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
        providers = ContextProviders(
            embed_provider=getattr(self.embedder, "encode", None),
            nli_provider=getattr(self.nli, "entail_probs", None),
        )
        t0 = time.perf_counter()
        async with self.limiters["score"].slot():
            resp = await score_answers(req, self.stages, self.profiles, providers)
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

        path = sqlite_path(self.decision_log.url)
        if path is None:
            log.warning("live monitors start empty: rebuilding them reads a SQLite decision "
                        "log, not %s", type(self.decision_log._store).__name__)
            return
        counts = await asyncio.to_thread(audit_counts, path, self.settings.audit_rate)
        recent = []
        for m in self.profiles.models.values():
            if m.id is None:  # an uncalibrated model has no decisions of its own to replay
                continue
            recent += await asyncio.to_thread(recent_decisions, path, m.id,
                                              self.settings.drift_window)
        self.monitoring.restore(counts, recent)

    def _set_profiles(self, profiles: Profiles, settings: Settings | None = None) -> None:
        """One synchronous swap: a request sees the old profiles or the new ones."""
        self.profiles = profiles
        if settings is not None:
            self.settings = settings
        self._serving_base = None
        s = self.settings
        if self.cascade is not None:
            self.cascade = dataclasses.replace(
                self.cascade, profiles=profiles, default_max_tokens=s.default_max_tokens,
                max_tokens_limit=s.max_tokens_limit)
        self.metrics.set_calibration(profiles)
        if self.monitoring is not None:
            self.monitoring.activate(profiles.models.values())

    async def reload_calibration(self, source: str | None = None,
                                 by: str = "SIGHUP") -> dict[str, Any]:
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
            template = getattr(self.engine, "chat_template_hash", None)
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
        both = before.keys() & after.keys()
        added = sorted(after.keys() - before.keys())
        removed = sorted(before.keys() - after.keys())
        replaced = sorted(n for n in both if before[n] != after[n])
        unchanged = sorted(n for n in both if before[n] == after[n])
        changed = bool(added or removed or replaced)
        out: dict[str, Any] = {
            "reloaded": changed or bool(unchanged), "changed": changed, "source": loaded,
            "profiles": after, "previous": before, "added": added, "removed": removed,
            "replaced": replaced, "unchanged": unchanged, "skipped": list(profiles.skipped)}
        log.info("calibration reloaded (%s, source %s): %s -> %s; added %s, removed %s, "
                 "replaced %s", by, loaded, before or "none", after or "none",
                 added, removed, replaced)
        return out

    def ids(self) -> dict[str, str]:
        return {n: str(m.id) for n, m in self.profiles.models.items()}
