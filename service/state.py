"""The app's runtime: engine lifecycle, admission control and metrics around the cascade."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from service import schemas
from service.cascade.policy import ConfidenceModel, UncalibratedModel
from service.cascade.providers import Providers
from service.cascade.runner import Cascade
from service.cascade.score import score as score_answers
from service.cascade.stages import Stage, default_stages
from service.config import Settings
from service.decision_log import DecisionLog
from service.engine.protocol import EngineClient
from service.errors import BadRequest, EngineUnavailable, Overloaded
from service.metrics import Metrics

log = logging.getLogger(__name__)


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
    inflight: int = 0
    cascade: Cascade | None = None
    decision_log: DecisionLog | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def build(cls, settings: Settings, metrics: Metrics | None = None,
              model: ConfidenceModel | None = None) -> CandorState:
        if model is None and settings.calibration is not None:  # a bad artifact fails here
            from service.calibration.artifact import load_artifact

            model = load_artifact(settings.calibration, expected_model=settings.model_name)
        model = model or UncalibratedModel(settings.answer_threshold, settings.abstain_threshold)
        metrics = metrics or Metrics()
        metrics.set_calibration(model.id, getattr(model, "default_target_risk", None))
        return cls(settings=settings, metrics=metrics, model=model,
                   stages=default_stages(settings.cluster_similarity))

    # -- lifecycle ---------------------------------------------------------------------------
    def attach(self, engine: EngineClient, embedder: object | None = None,
               nli: object | None = None) -> None:
        """Wire a loaded engine (and optional embedder/NLI) into a ready cascade."""
        s = self.settings
        self.engine, self.embedder, self.nli = engine, embedder, nli
        providers = Providers(
            engine=engine, top_logprobs=s.top_logprobs, samples_n=s.samples_n,
            sample_temperature=s.sample_temperature, sample_max_tokens=s.sample_max_tokens,
            max_model_len=s.max_model_len, max_question_chars=s.max_question_chars,
            embed=getattr(embedder, "encode", None), nli=getattr(nli, "entail_probs", None),
        )
        self.cascade = Cascade(
            stages=self.stages, providers=providers, model=self.model,
            default_max_stage=s.max_stage, default_max_tokens=s.default_max_tokens,
            max_tokens_limit=s.max_tokens_limit, max_budget_ms=s.max_budget_ms,
            model_name=s.model_name,
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
    async def answer(self, req: schemas.AnswerRequest, endpoint: str) -> schemas.AnswerResponse:
        cascade = self._require_cascade()
        if self.inflight >= self.settings.max_inflight:
            raise Overloaded(
                f"{self.inflight} requests in flight (limit {self.settings.max_inflight})",
                retry_after_s=1,
            )
        self.inflight += 1
        self.metrics.inflight.set(self.inflight)
        t0 = time.perf_counter()
        try:
            resp = await cascade.answer(req)
        finally:
            self.inflight -= 1
            self.metrics.inflight.set(self.inflight)
        self.metrics.observe_answer(endpoint, resp, time.perf_counter() - t0)
        if self.decision_log is not None:  # queued; the writer thread does the I/O
            self.decision_log.record(resp, req, endpoint)
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
        resp = await score_answers(req, self.stages, self.model, providers)
        self.metrics.observe_score(time.perf_counter() - t0)
        return resp
