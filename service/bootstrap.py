"""Build a ``CandorState`` and start its engine, embedder and NLI model the way
``candor serve`` does.

The one place the runtime is started from: ``service/main.py`` (the server's lifespan
runs ``load_engine`` in the background) and the offline commands (``service/offline/``:
``candor calibrate`` / ``candor eval`` without ``--server`` collect through an
in-process engine, ``start_state``). Both take the starter as a parameter (a
``Starter``), so tests pass a fake one that attaches a fake engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from service.config import Settings
from service.engine.factory import start_engine
from service.engine.protocol import EngineClient
from service.signals.base import Entailer, TextEncoder
from service.state import CandorState

log = logging.getLogger("candor")

# Starts the engine (and the embedder/NLI models) of a built state; ``load_engine`` is the
# real one, tests pass a fake.
Starter = Callable[[CandorState], Awaitable[None]]


async def load_engine(state: CandorState) -> None:
    """Start the engine (off the event loop) and the embedder; record a failure instead of
    hanging. An engine started before a later step failed is closed, never leaked."""
    s = state.settings
    engine: EngineClient | None = None
    try:
        engine = await start_engine(s)
        embedder, nli = await asyncio.to_thread(load_side_models, s)
        state.attach(engine, embedder, nli)
        log.info("ready: model=%s engine=%s", s.model_name, s.engine)
    except Exception as exc:  # noqa: BLE001 - reported on /readyz, never swallowed silently
        state.load_error = f"{type(exc).__name__}: {exc}"
        log.error("engine failed to load: %s", state.load_error)
    finally:
        if engine is not None and state.engine is not engine:
            await engine.aclose()


def load_side_models(s: Settings) -> tuple[TextEncoder, Entailer | None]:
    """The embedder and, when ``CANDOR_NLI_MODEL`` is set, the NLI model (blocking)."""
    from service.signals.embedder import Embedder

    embedder = Embedder(s.embedding_model)
    nli: Entailer | None = None
    if s.nli_model is not None:
        from service.signals.nli import NliModel

        nli = NliModel(s.nli_model)
    return embedder, nli


async def start_state(settings: Settings, start: Starter = load_engine) -> CandorState:
    """A ``CandorState`` built from ``settings`` (as ``create_app`` builds it) with its
    engine started by ``start``. A failed start is recorded on the state (``load_error``,
    no cascade), not raised: the caller decides how to report it."""
    state = CandorState.build(settings)
    await start(state)
    return state
