"""``AsyncCandorClient``: the asyncio client (``async with AsyncCandorClient() as c: ...``).

The same methods as ``CandorClient`` (see there), awaited. Options, requests and retry
decisions are ``_base.BaseClient``'s; this class sends, sleeps and closes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from candor_client import _base, _http
from candor_client.models import Answer, Calibration, FeedbackResult, Health, Policy, Score


class AsyncCandorClient(_base.BaseClient[httpx.AsyncClient | _http.AsyncHTTPClient]):
    """Async client. ``base_url``/``api_key`` default to ``CANDOR_BASE_URL``/``CANDOR_API_KEY``.

    ``timeout`` is per HTTP attempt; ``max_retries`` bounds retries on connection failures
    and on 429/503 (backoff with jitter, honouring ``Retry-After``). Pass ``http_client`` to
    bring your own ``httpx.AsyncClient`` or ``httpx2.AsyncClient`` (proxies, transports); it
    is then not closed here.
    """

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient()

    # -- lifecycle -------------------------------------------------------------------------
    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncCandorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- endpoints -------------------------------------------------------------------------
    async def answer(self, question: str, *, context: str | None = None,
                     system: str | None = None, task: str = "auto", max_tokens: int | None = None,
                     policy: Policy | dict[str, Any] | None = None, return_samples: bool = False,
                     return_logprobs: bool = False, claims: bool = False) -> Answer:
        """Answer with a confidence; ``Answer.abstained`` is true when Candor is unsure.
        ``claims``: claims mode (``Answer.claims``: each claim's confidence, the kept ones)."""
        return await self._call(_base.answer_call(
            question, context=context, system=system, task=task, max_tokens=max_tokens,
            policy=policy, return_samples=return_samples, return_logprobs=return_logprobs,
            claims=claims))

    async def score(self, question: str, answer: str, *, samples: list[str] | None = None,
                    token_logprobs: list[float] | None = None,
                    top_logprobs: list[list[float]] | None = None, context: str | None = None,
                    task: str = "auto", profile: str | None = None) -> Score:
        """Uncertainty signals for an answer you already have (nothing is generated);
        ``profile``: the calibration profile to score with (default: the task's)."""
        return await self._call(_base.score_call(
            question, answer, samples=samples, token_logprobs=token_logprobs,
            top_logprobs=top_logprobs, context=context, task=task, profile=profile))

    async def feedback(self, id: str, correct: bool) -> FeedbackResult:
        """Label an earlier answer (by its ``id``) for the next recalibration."""
        return await self._call(_base.feedback_call(id, correct))

    async def calibration(self) -> Calibration:
        """The calibration profiles served, their promises and the live watch
        (``calibrated=False`` when the server has none)."""
        return await self._call(_base.CALIBRATION)

    async def health(self) -> Health:
        """Liveness and readiness; a not-ready engine is ``ready=False``, not an exception."""
        _base.check_live(await self._request("GET", "/healthz", retry=False))
        return _base.health_from(await self._request("GET", "/readyz", retry=False))

    # -- transport -------------------------------------------------------------------------
    async def _call(self, call: _base.Call[_base.M]) -> _base.M:
        return _base.parse(await self._request(call.method, call.path, call.body), call.model)

    async def _request(self, method: str, path: str, json: dict[str, Any] | None = None,
                       retry: bool = True) -> _http.HTTPResponse:
        max_retries, attempt = self._retries(retry), 0
        while True:
            outcome: _http.HTTPResponse | Exception
            try:
                outcome = await self._http.request(**self._attempt(method, path, json))
            except _base.SEND_ERRORS as exc:
                outcome = exc
            step = self._after(method, path, outcome, attempt, max_retries)
            if not isinstance(step, float):
                return step
            await asyncio.sleep(step)
            attempt += 1
