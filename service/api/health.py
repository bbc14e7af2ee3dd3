"""Probes, model list, metrics and the active calibration."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import StateDep
from service.api.errors import documented_errors
from service.errors import Draining, EngineUnavailable
from service.schemas import ModelCard, ModelList

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (says nothing about the engine)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: StateDep) -> dict[str, str]:
    """200 once the engine is loaded and healthy; 503 before, after an engine failure, and
    while the replica drains (SIGTERM: ``draining``)."""
    if state.draining:
        raise Draining("draining: this replica is shutting down")
    if not await state.ready():
        detail = state.load_error or ("engine not loaded yet" if state.engine is None
                                      else "the engine does not answer its health check")
        raise EngineUnavailable(f"not ready: {detail}", headers={"Retry-After": "5"})
    dlog = state.decision_log
    if dlog is not None and not dlog.healthy:  # answers flow; labels and rows do not
        return {"status": "degraded", "model": state.settings.model_name,
                "decision_log": dlog.last_error or "failing"}
    return {"status": "ready", "model": state.settings.model_name}


@router.get("/v1/models", response_model=ModelList, responses=documented_errors())
async def models(state: StateDep) -> ModelList:
    return ModelList(data=[ModelCard(id=state.settings.model_name)])


@router.get("/metrics", include_in_schema=False)
async def metrics(state: StateDep) -> Response:
    payload = generate_latest(state.metrics.registry)
    try:  # vLLM's own engine metrics live in the default registry when the engine runs here
        from prometheus_client import REGISTRY

        if REGISTRY is not state.metrics.registry:
            payload += generate_latest(REGISTRY)
    except Exception:  # pragma: no cover
        pass
    return Response(payload, media_type=CONTENT_TYPE_LATEST)
