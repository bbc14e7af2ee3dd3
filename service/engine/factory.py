"""Pick and start the engine ``CANDOR_ENGINE`` names: in-process vLLM or remote servers.

Nothing here blocks the event loop: the local engine's model conversion and vLLM's start
(seconds to minutes) run in a worker thread, so ``/healthz`` answers while the model loads.
"""

from __future__ import annotations

import asyncio

from service.config import Settings
from service.engine.protocol import EngineClient


def remote_engine(settings: Settings) -> EngineClient:
    from service.engine.openai_remote import OpenAIRemoteEngine

    key = settings.engine_api_key.get_secret_value() if settings.engine_api_key else None
    return OpenAIRemoteEngine(
        settings.engine_url, settings.model_name, api_key=key,
        timeout_s=settings.engine_timeout_s, connect_timeout_s=settings.engine_connect_timeout_s,
        attempts=settings.engine_attempts)


async def start_engine(settings: Settings) -> EngineClient:
    """A started engine; the caller owns it (``aclose``), also when a later step fails."""
    if settings.engine == "remote":
        return remote_engine(settings)
    from service.engine.model_store import resolve_model
    from service.engine.vllm_local import VllmLocalEngine

    path = await asyncio.to_thread(resolve_model, settings)
    return await VllmLocalEngine.start(settings, path)
