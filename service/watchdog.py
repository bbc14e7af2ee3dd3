"""Engine watchdog: turns a dead engine into 503s at once, then a clean non-zero exit.

Policy (docs/reliability.md): Candor does not try to restart vLLM inside the process
(a crashed EngineCore or an OOM leaves CUDA/CPU state that an in-process restart cannot
trust). Instead, as soon as the engine is found dead (``health()`` false after it was
ready) or failed to load, the watchdog takes the cascade out of service, so ``/readyz``
and every request answer 503 with the reason, and after ``engine_exit_grace_s`` it asks
the server to shut down (``candor serve``: uvicorn's ``should_exit``, so it drains and
returns; elsewhere SIGTERM to itself). ``candor serve`` then exits with status 3, and
the supervisor (systemd ``Restart=on-failure``, Docker ``restart: unless-stopped``,
Kubernetes) starts a fresh process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from service.state import CandorState

log = logging.getLogger(__name__)

EXIT_ENGINE_FAILED = 3


def request_shutdown() -> None:
    """Ask uvicorn (whose handler is installed on the main thread) to shut down gracefully."""
    signal.raise_signal(signal.SIGTERM)


@dataclass
class EngineWatchdog:
    state: CandorState
    interval_s: float = 5.0
    exit_grace_s: float = 5.0
    exit_on_failure: bool = True
    on_fatal: Callable[[], None] = field(default=request_shutdown)
    tripped: str | None = None

    async def check(self) -> bool:
        """One probe. Returns True (and takes the cascade out) when the engine is gone."""
        st = self.state
        if self.tripped:
            return True
        if st.engine is None:
            if st.load_error is None:
                return False  # still loading
            self.tripped = f"engine failed to load: {st.load_error}"
        elif not await st.engine.health():
            self.tripped = "the inference engine died (crash or out of memory)"
            st.load_error = self.tripped
            st.cascade = None  # new requests: 503 with the reason; /readyz: 503
        else:
            return False
        log.error("watchdog: %s", self.tripped)
        return True

    async def run(self) -> None:
        """Probe every ``interval_s``; once tripped, wait the grace period and shut down."""
        while not await self.check():
            await asyncio.sleep(self.interval_s)
        if not self.exit_on_failure:
            return
        log.error("watchdog: shutting down in %.1f s for the supervisor to restart us "
                  "(exit status %d)", self.exit_grace_s, EXIT_ENGINE_FAILED)
        await asyncio.sleep(self.exit_grace_s)
        self.on_fatal()
