"""The request guard: API keys, the body-size limit, and cancel-on-disconnect, as ASGI middleware.

One pure-ASGI layer in front of every route (so every endpoint that lands gets it):

- **Auth.** A key comes as ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` and is
  checked with ``hmac.compare_digest`` against every client and admin key (no early exit
  on the first match); the caller's ``Principal`` (role and key fingerprint,
  ``api/principal.py``) goes into the scope's state for the routes (admin routes check
  it). When ``CANDOR_API_KEYS`` is set, every request needs a client or admin key; with
  only ``CANDOR_ADMIN_KEYS`` set the client routes stay open. ``/healthz``, ``/readyz``
  and ``/metrics`` stay open when ``open_probes`` is true; the playground page and its
  assets are always open (they hold no data; the API calls the page makes need the key).
  A missing or wrong key is a 401 (``Unauthorized``).
- **Body size.** A ``Content-Length`` over ``max_body_bytes``, or a streamed body that
  grows past it, is a 413 naming the limit (``PayloadTooLarge``); the body is never
  buffered beyond it. A body not complete ``body_timeout_s`` after the headers is a 408
  (``RequestTimeout``), and the connection closes (a slow client's headers:
  ``service/server.py``).
- **Disconnects.** The body is read here, then the route runs as a task while this layer
  listens for ``http.disconnect``; a disconnect cancels the route, and cancelling the
  coroutine awaiting the engine aborts the engine's work (vLLM aborts on CancelledError).
  This is vLLM's ``with_cancellation`` pattern, done once for all routes.

Each refusal is an error of the tree (``service/errors.py``) rendered by ``api/errors.py``'s
``render``, as a route's would be: one error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import SecretStr

from service.api.errors import render
from service.api.playground import is_public
from service.api.principal import ANONYMOUS, SCOPE_KEY, Principal, Role, fingerprint
from service.config import Settings
from service.errors import CandorError, PayloadTooLarge, RequestTimeout, Unauthorized

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CLIENT_CLOSED = 499  # nginx's "client closed request", for the metrics only


class RequestGuard:
    """ASGI middleware: auth, then the body limit, then run the route cancellable."""

    def __init__(self, app: ASGIApp, settings: Settings,
                 on_status: Callable[[str, int], None] | None = None) -> None:
        self.app = app
        self.settings = settings
        roles: list[tuple[list[SecretStr], Role]] = [(settings.api_keys, "client"),
                                                     (settings.admin_keys, "admin")]
        self.keys = [(k.get_secret_value().encode(), role) for keys, role in roles for k in keys]
        self.on_status = on_status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        public = is_public(path) or (self.settings.open_probes and path in OPEN_PATHS)
        who = self._principal(scope) if self.keys else ANONYMOUS
        scope.setdefault("state", {})[SCOPE_KEY] = who
        if self.settings.api_keys and not public:  # admin keys alone leave client routes open
            if who is ANONYMOUS:
                await self._refuse(scope, receive, send, path, Unauthorized(
                    "missing or invalid API key (send 'Authorization: Bearer <key>')",
                    headers={"WWW-Authenticate": "Bearer"}))
                return
        limit = self.settings.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._too_large(scope, receive, send, path, limit)
            return
        body = bytearray()
        try:
            async with asyncio.timeout(self.settings.body_timeout_s):  # the whole body
                while True:
                    msg = await receive()
                    if msg["type"] == "http.disconnect":
                        return
                    body += msg.get("body", b"")
                    if len(body) > limit or not msg.get("more_body", False):
                        break
        except TimeoutError:
            await self._timed_out(scope, receive, send, path, len(body))
            return
        if len(body) > limit:
            await self._too_large(scope, receive, send, path, limit)
            return
        await self._run_cancellable(scope, receive, send, bytes(body), path)

    def _principal(self, scope: Scope) -> Principal:
        """The caller's role and key fingerprint; ``ANONYMOUS`` for a missing or wrong key."""
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-api-key", b"")
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        role: Role = "anonymous"
        for key, key_role in self.keys:  # compare with every key: timing tells no match apart
            if hmac.compare_digest(given, key) and role != "admin":
                role = key_role
        if not given or role == "anonymous":
            return ANONYMOUS
        return Principal(role, fingerprint(given))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, path: str,
                      exc: CandorError) -> None:
        """Answer ``exc`` before any route runs (counted like a route's error)."""
        self._observe(path, exc.status)
        await render(exc)(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, path: str,
                         limit: int) -> None:
        await self._refuse(scope, receive, send, path, PayloadTooLarge(
            f"request body exceeds max_body_bytes={limit}", param="body"))

    async def _timed_out(self, scope: Scope, receive: Receive, send: Send, path: str,
                         got: int) -> None:
        """408 for a body slower than ``body_timeout_s``; the connection closes after it
        (whatever the client sends later is never read as a new request)."""
        timeout = self.settings.body_timeout_s
        log.info("request body not complete after %.1f s (%d bytes): 408 %s %s", timeout,
                 got, scope.get("method"), path)
        await self._refuse(scope, receive, send, path, RequestTimeout(
            f"request body not complete within body_timeout_s={timeout:g} s", param="body",
            headers={"Connection": "close"}))

    async def _run_cancellable(self, scope: Scope, receive: Receive, send: Send, body: bytes,
                               path: str) -> None:
        disconnected = asyncio.Event()
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def watch() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    disconnected.set()
                    return

        async def serve() -> None:
            await self.app(scope, replay, send)

        route = asyncio.create_task(serve())
        watcher = asyncio.create_task(watch())
        try:
            await asyncio.wait({route, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the server itself is cancelling us
            route.cancel()
            watcher.cancel()
            raise
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if route.done():
            route.result()  # re-raise what the route raised (the error handlers answer it)
            return
        route.cancel()  # the client went away first: stop its work, engine included
        log.info("client disconnected: cancelled %s %s", scope.get("method"), path)
        self._observe(path, CLIENT_CLOSED)
        with contextlib.suppress(asyncio.CancelledError, Exception):  # nobody left to answer
            await route

    def _observe(self, path: str, status: int) -> None:
        if self.on_status is not None:
            self.on_status(path, status)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
