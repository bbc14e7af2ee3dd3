"""``CandorClient``: the synchronous client (``with CandorClient(...) as c: c.answer(...)``)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from candor_client import _base, _http
from candor_client.errors import CandorConnectionError, CandorTimeoutError, error_for
from candor_client.models import (
    Answer,
    Calibration,
    FeedbackResult,
    Health,
    Policy,
    Score,
)


class CandorClient:
    """Sync client. ``base_url``/``api_key`` default to ``CANDOR_BASE_URL``/``CANDOR_API_KEY``.

    ``timeout`` is per HTTP attempt; ``max_retries`` bounds retries on connection failures
    and on 429/503 (backoff with jitter, honouring ``Retry-After``). Pass ``http_client`` to
    bring your own ``httpx.Client`` or ``httpx2.Client`` (proxies, transports); it is then
    not closed here.
    """

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float | httpx.Timeout | None = None, max_retries: int | None = None,
                 http_client: httpx.Client | _http.SyncHTTPClient | None = None) -> None:
        self._opts = _base.Options.resolve(base_url, api_key, timeout, max_retries)
        self._owns_http = http_client is None
        self._http: httpx.Client | _http.SyncHTTPClient = http_client or httpx.Client()

    @property
    def base_url(self) -> str:
        return self._opts.base_url

    def with_options(self, *, timeout: float | httpx.Timeout | None = None,
                     max_retries: int | None = None) -> CandorClient:
        """A copy with other timeout/retries, sharing this client's connection pool."""
        clone = CandorClient.__new__(CandorClient)
        clone._opts = self._opts.override(timeout, max_retries)
        clone._owns_http, clone._http = False, self._http
        return clone

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> CandorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints -------------------------------------------------------------------------
    def answer(self, question: str, *, context: str | None = None, system: str | None = None,
               task: str = "auto", max_tokens: int | None = None,
               policy: Policy | dict[str, Any] | None = None, return_samples: bool = False,
               return_logprobs: bool = False) -> Answer:
        """Answer with a confidence; ``Answer.abstained`` is true when Candor is unsure."""
        body = _base.answer_body(question, context=context, system=system, task=task,
                                 max_tokens=max_tokens, policy=policy,
                                 return_samples=return_samples, return_logprobs=return_logprobs)
        return _base.parse(self._request("POST", "/v1/answer", body), Answer)

    def score(self, question: str, answer: str, *, samples: list[str] | None = None,
              token_logprobs: list[float] | None = None,
              top_logprobs: list[list[float]] | None = None, context: str | None = None,
              task: str = "auto", profile: str | None = None) -> Score:
        """Uncertainty signals for an answer you already have (nothing is generated);
        ``profile``: the calibration profile to score with (default: the task's)."""
        body = _base.score_body(question, answer, samples=samples, token_logprobs=token_logprobs,
                                top_logprobs=top_logprobs, context=context, task=task,
                                profile=profile)
        return _base.parse(self._request("POST", "/v1/score", body), Score)

    def feedback(self, id: str, correct: bool) -> FeedbackResult:
        """Label an earlier answer (by its ``id``) for the next recalibration."""
        body = {"id": id, "correct": correct}
        return _base.parse(self._request("POST", "/v1/feedback", body), FeedbackResult)

    def calibration(self) -> Calibration:
        """The active calibration artifact (``calibrated=False`` when the server has none)."""
        return _base.parse(self._request("GET", "/v1/calibration"), Calibration)

    def health(self) -> Health:
        """Liveness and readiness; a not-ready engine is ``ready=False``, not an exception."""
        live = self._request("GET", "/healthz", retry=False)
        if live.status_code >= 400:
            raise error_for(live)
        ready = self._request("GET", "/readyz", retry=False)
        return _base.health_from(ready)

    # -- transport -------------------------------------------------------------------------
    def _request(self, method: str, path: str, json: dict[str, Any] | None = None,
                 retry: bool = True) -> _http.HTTPResponse:
        opts, attempt = self._opts, 0
        max_retries = opts.max_retries if retry else 0
        while True:
            try:
                resp: _http.HTTPResponse | None = self._http.request(
                    method, opts.base_url + path, json=json, headers=opts.headers(),
                    timeout=_http.as_tuple(opts.timeout))
            except _http.CONNECT_ERRORS as exc:
                if not _base.should_retry(None, attempt, max_retries):
                    raise CandorConnectionError(f"cannot reach {opts.base_url}: {exc}") from exc
                resp = None
            except _http.TIMEOUT_ERRORS as exc:
                raise CandorTimeoutError(f"{method} {path} timed out: {exc}") from exc
            except _http.TRANSPORT_ERRORS as exc:
                raise CandorConnectionError(f"{method} {path} failed: {exc}") from exc
            if resp is not None and not _base.should_retry(resp, attempt, max_retries):
                return resp
            time.sleep(_base.retry_delay(resp, attempt))
            attempt += 1
