"""uvicorn's HTTP protocol with the two limits it lacks: a header timeout and a connection cap.

uvicorn (httptools protocol) times out only an idle keep-alive connection *between*
requests (``timeout_keep_alive``): a connection that sends nothing, or half its headers,
stays open for ever. ``CandorHttpProtocol`` adds, per connection:

- **Header timeout.** A request's headers must be complete ``header_timeout_s`` after the
  connection opened (the first request) or after the first byte that follows a response
  (later ones on a keep-alive connection), else the connection is closed without a
  response (a request already running on it finishes first). The body's own limit,
  ``body_timeout_s``, is the request guard's (``service/api/middleware.py``: 408).
- **Connection cap.** At most ``max_connections`` open connections. A new one beyond it
  closes the *oldest idle* connection (one waiting for its headers, or idle between
  requests); when every connection is busy with a request, the new connection's request
  is answered ``503 overloaded_error`` (``Retry-After: 1``) and it is closed. uvicorn's own
  ``limit_concurrency`` is not used: it counts idle connections too and answers the *new*
  request 503, so a client holding that many idle sockets would lock every other client
  out for as long as it keeps them.

``serve(app, settings)`` runs uvicorn with them, as ``candor serve`` does. Only the
httptools protocol is subclassed, and named explicitly (``http=``): the ``auto`` choice
would fall back to h11 without these limits.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.api.errors import error_response
from service.config import Settings
from service.errors import Overloaded

log = logging.getLogger("candor.server")
_ORDER = itertools.count()  # idle since when, as an order (uvloop's clock ticks in ms)


class CandorHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with a header timeout and the connection cap (class attributes,
    set by ``protocol_class``)."""

    header_timeout_s: float = 10.0
    max_connections: int = 512
    _warned_at = float("-inf")

    # uvicorn narrows asyncio's BaseTransport to Transport in the same way
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        self._idle_order = next(_ORDER)
        super().connection_made(transport)
        self._arm()
        if self._over_cap():
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._idle():  # bytes between requests: the next request's headers are due
            self._arm()
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm()
        if self._over_cap() and not self._make_room():
            now = self.loop.time()
            if now - CandorHttpProtocol._warned_at > 10:
                CandorHttpProtocol._warned_at = now
                log.warning("%d connections open, none idle (max_connections=%d): 503",
                            len(self.connections), self.max_connections)
            self.app = _refuse  # this request only: the 503 closes the connection
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_order = next(_ORDER)

    # -- the header timeout ----------------------------------------------------------------
    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        log.debug("request headers not complete after %.1f s: closing %s",
                  self.header_timeout_s, self.client)
        self.shutdown()  # closes now, or after the response of a request still running

    # -- the connection cap ----------------------------------------------------------------
    def _over_cap(self) -> bool:
        if len(self.connections) <= self.max_connections:
            return False  # the usual case, O(1); else do not count those closing already
        return sum(not c.transport.is_closing() for c in self.connections
                   if isinstance(c, HttpToolsProtocol)) > self.max_connections

    def _idle(self) -> bool:
        return ((self.cycle is None or self.cycle.response_complete) and not self.pipeline
                and not self.transport.is_closing())

    def _make_room(self) -> bool:
        """Close the oldest idle connection but this one; False when none is idle."""
        idle = [c for c in self.connections
                if c is not self and isinstance(c, CandorHttpProtocol) and c._idle()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_order)
        oldest.transport.close()
        return True


async def _refuse(scope: Any, receive: Any, send: Any) -> None:
    await error_response(
        503, Overloaded.type, "too many open connections, none idle (max_connections); "
        "retry", headers={"Retry-After": "1", "Connection": "close"})(scope, receive, send)


def protocol_class(settings: Settings) -> type[CandorHttpProtocol]:
    """``CandorHttpProtocol`` with the limits of ``settings``."""
    return type("CandorHttpProtocol", (CandorHttpProtocol,), {
        "header_timeout_s": settings.header_timeout_s,
        "max_connections": settings.max_connections,
    })


# uvicorn's own graceful-shutdown limit. The drain (service/drain.py) has already waited
# CANDOR_DRAIN_TIMEOUT_S for running work when it stops uvicorn: what is left is writing
# out responses that just finished, not more waiting past the operator's bound.
GRACE_S = 2


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The ``uvicorn.run`` options of ``candor serve``: address, the protocol that bounds
    slow and idle clients, the keep-alive timeout, the graceful-shutdown limit."""
    return {"host": settings.host, "port": settings.port, "log_level": settings.log_level,
            "http": protocol_class(settings), "timeout_keep_alive": settings.keep_alive_s,
            "timeout_graceful_shutdown": GRACE_S}


def serve(app: Any, settings: Settings) -> None:
    """Run ``app`` as ``candor serve`` does (blocks until the server stops).

    ``app.state.request_shutdown()`` stops it gracefully without a signal (the engine
    watchdog's way out): uvicorn re-raises a SIGTERM it drained on, which would end the
    process *killed by SIGTERM* instead of with ``candor serve``'s exit status."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings)))
    app.state.request_shutdown = lambda: setattr(server, "should_exit", True)
    server.run()
