"""Graceful drain: on SIGTERM (or SIGINT) a replica leaves the load balancer, refuses new
work with a clear 503, finishes what it started within a bound, and exits.

In order (``drain``):

1. ``/readyz`` answers 503 ``draining`` (``CandorState.draining``), so the load balancer
   stops sending; requests that still arrive are served as usual for
   ``CANDOR_DRAIN_DELAY_S`` (the time a balancer takes to notice; 0 by default).
2. Nothing new is admitted (``CandorState.stop_admitting``): a new ``/v1/answer``, chat or
   ``/v1/score`` request, and every admitted request still waiting in the engine queue for
   its first call, gets 503 ``draining`` with ``Retry-After`` and ``Connection: close``
   (it never started: retrying it on another replica is safe). Labels are still taken:
   acknowledged only once committed, they are never lost.
3. Requests already running finish, for at most ``CANDOR_DRAIN_TIMEOUT_S``.
4. The server stops (uvicorn closes the connections, runs the shutdown: the decision log
   is flushed). A second signal stops it at once.

Only ``candor serve`` installs it (the main thread owns the signals; ``service/server.py``
gives the way to stop uvicorn without re-raising the signal).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable

from service.state import CandorState

log = logging.getLogger("candor.drain")
SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def drain(state: CandorState, stop: Callable[[], None]) -> None:
    s = state.settings
    t0 = time.monotonic()
    state.draining = True
    log.warning("draining: /readyz answers 503; new work is refused in %.1f s",
                s.drain_delay_s)
    await asyncio.sleep(s.drain_delay_s)
    state.stop_admitting()
    deadline = time.monotonic() + s.drain_timeout_s
    while state.busy() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    left = state.busy()
    log.warning("drained in %.1f s%s; stopping", time.monotonic() - t0,
                f" ({left} requests still running at CANDOR_DRAIN_TIMEOUT_S)" if left else "")
    stop()


def install_drain(state: CandorState, stop: Callable[[], None]) -> bool:
    """SIGTERM/SIGINT start ``drain``; a second one calls ``stop`` at once. False where the
    loop may not own signals (not the main thread)."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        if tasks:  # asked again: stop now
            stop()
            return
        tasks.append(loop.create_task(drain(state, stop)))

    try:
        for sig in SIGNALS:
            loop.add_signal_handler(sig, on_signal)
    except (ValueError, RuntimeError, NotImplementedError):
        return False
    return True
