"""The HTTP client a caller may bring: ``httpx`` or its successor ``httpx2``, by shape.

Starlette's ``TestClient`` (1.10 on) and openai-python build on ``httpx2``, whose
``request`` rejects an ``httpx.Timeout``; a client given one of those must still work. So
the timeout goes out as a plain ``(connect, read, write, pool)`` tuple, which every
generation accepts, and transport errors are caught from whichever families are installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Protocol

import httpx

Timeouts = tuple[float | None, float | None, float | None, float | None]


class HTTPResponse(Protocol):
    """What the client reads of a response (``httpx.Response``, ``httpx2.Response``)."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def text(self) -> str: ...
    @property
    def reason_phrase(self) -> str: ...
    def json(self) -> Any: ...


class SyncHTTPClient(Protocol):
    def request(self, method: str, url: str, *, json: Any = ...,
                headers: Any = ..., timeout: Any = ...) -> Any: ...
    def close(self) -> None: ...


class AsyncHTTPClient(Protocol):
    async def request(self, method: str, url: str, *, json: Any = ...,
                      headers: Any = ..., timeout: Any = ...) -> Any: ...
    async def aclose(self) -> None: ...


def as_tuple(timeout: httpx.Timeout) -> Timeouts:
    return (timeout.connect, timeout.read, timeout.write, timeout.pool)


def _families() -> list[ModuleType]:
    mods = [httpx]
    try:
        mods.append(importlib.import_module("httpx2"))
    except ImportError:
        pass
    return mods


_MODS = _families()
CONNECT_ERRORS: tuple[type[Exception], ...] = tuple(
    e for m in _MODS for e in (m.ConnectError, m.ConnectTimeout))
TIMEOUT_ERRORS: tuple[type[Exception], ...] = tuple(m.TimeoutException for m in _MODS)
TRANSPORT_ERRORS: tuple[type[Exception], ...] = tuple(m.TransportError for m in _MODS)
