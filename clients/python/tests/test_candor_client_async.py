"""``AsyncCandorClient`` against a fake transport: the same contract as the sync client."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from conftest import BASE, FakeServer, error

from candor_client import (
    AsyncCandorClient,
    BadRequestError,
    CandorConnectionError,
    OverloadedError,
    UnavailableError,
)


def make(server: FakeServer, **kw: object) -> AsyncCandorClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(server))
    return AsyncCandorClient(BASE, http_client=http, **kw)  # type: ignore[arg-type]


async def test_answer_and_other_endpoints(server: FakeServer) -> None:
    async with make(server, api_key="k") as c:
        ans = await c.answer("unsure: q", system="be brief", max_tokens=16)
        sc = await c.score("q", "a")
        fb = await c.feedback(ans.id, False)
        cal = await c.calibration()
        h = await c.health()
    assert ans.abstained and ans.confidence == 0.31 and ans.calibration.calibrated is False
    first = server.requests[0]
    assert first.headers["authorization"] == "Bearer k"
    assert sc.confidence == 0.7 and fb.stored and not cal.calibrated and h.ready
    assert server.requests[2].url.path == "/v1/feedback"


async def test_concurrent_requests_share_one_pool(server: FakeServer) -> None:
    async with make(server) as c:
        answers = await asyncio.gather(*(c.answer(f"q{i}") for i in range(5)))
    assert [a.answer for a in answers] == ["Paris"] * 5 and len(server.requests) == 5


async def test_retries_then_typed_errors(server: FakeServer, sleeps: list[float]) -> None:
    server.queue = [error(503, "engine_unavailable", "loading", headers={"Retry-After": "5"}),
                    error(429, "overloaded_error", "busy"), error(429, "overloaded_error", "busy")]
    async with make(server) as c:
        with pytest.raises(OverloadedError) as info:
            await c.answer("q")
        assert info.value.status_code == 429 and sleeps[0] == 5.0 and len(sleeps) == 2
        server.queue = [error(422, "invalid_request_error", "question: blank", "question")]
        with pytest.raises(BadRequestError):
            await c.answer(" ")
        server.queue = [error(503, "engine_unavailable", "down")]
        with pytest.raises(UnavailableError):
            await c.with_options(max_retries=0).answer("q")
    assert len(sleeps) == 2


async def test_connection_refused(sleeps: list[float]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    async with AsyncCandorClient(BASE, http_client=http, max_retries=1) as c:
        with pytest.raises(CandorConnectionError):
            await c.answer("q")
    assert len(sleeps) == 1


async def test_aclose_closes_only_an_owned_pool() -> None:
    c = AsyncCandorClient("http://x.test")
    await c.aclose()
    assert c._http.is_closed
    mine = httpx.AsyncClient()
    await AsyncCandorClient(http_client=mine).aclose()
    assert not mine.is_closed
    await mine.aclose()
