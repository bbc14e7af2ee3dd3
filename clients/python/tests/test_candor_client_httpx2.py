"""The client with an ``httpx2`` client brought by the caller (starlette's TestClient and
openai-python build on it): requests go out and parse, the timeout is one httpx2 accepts,
and httpx2's transport errors become the client's typed errors. The ``httpx`` direction is
every other test in this folder (``httpx.MockTransport``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import BASE, answer_body

from candor_client import AsyncCandorClient, CandorClient, CandorConnectionError, _http

httpx2 = pytest.importorskip("httpx2")


def handler(seen: list[Any]) -> Any:
    def route(request: Any) -> Any:
        seen.append(request)
        return httpx2.Response(200, json=answer_body("q"))
    return route


def test_sync_client_on_an_httpx2_client() -> None:
    seen: list[Any] = []
    http = httpx2.Client(transport=httpx2.MockTransport(handler(seen)))
    with CandorClient(BASE, http_client=http, timeout=httpx.Timeout(7.0, connect=2.0)) as c:
        ans = c.answer("capital of France?")
    assert ans.answer == "Paris" and str(seen[0].url) == f"{BASE}/v1/answer"
    assert seen[0].extensions["timeout"] == {"connect": 2.0, "read": 7.0, "write": 7.0,
                                             "pool": 7.0}


async def test_async_client_on_an_httpx2_client() -> None:
    seen: list[Any] = []
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler(seen)))
    async with AsyncCandorClient(BASE, http_client=http, timeout=3.0) as c:
        ans = await c.answer("capital of France?")
    assert ans.answer == "Paris" and seen[0].extensions["timeout"]["read"] == 3.0


def test_httpx2_connect_error_is_typed_and_retried() -> None:
    calls: list[Any] = []

    def refuse(request: Any) -> Any:
        calls.append(request)
        raise httpx2.ConnectError("refused", request=request)

    http = httpx2.Client(transport=httpx2.MockTransport(refuse))
    c = CandorClient(BASE, http_client=http, max_retries=1)
    c_fast = c.with_options(max_retries=0)
    with pytest.raises(CandorConnectionError):
        c_fast.answer("x")
    assert len(calls) == 1
    assert {httpx2.ConnectError, httpx.ConnectError} <= set(_http.CONNECT_ERRORS)


def test_the_timeout_tuple_means_the_same_to_both() -> None:
    t = httpx.Timeout(9.0, connect=1.5)
    assert httpx.Timeout(_http.as_tuple(t)) == t
    assert httpx2.Timeout(_http.as_tuple(t)).as_dict() == t.as_dict()
