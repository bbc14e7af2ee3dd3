"""What the sync and async clients share: ``BaseClient`` and the decisions it makes.

The two clients differ only in I/O (``httpx.Client`` vs ``httpx.AsyncClient``, ``sleep``),
the way openai-python and httpx split theirs. Everything that decides *what* to send and
*what to do* with the outcome lives here, once: the options (``Options``, ``with_options``),
each endpoint's request (``Call``: method, path, body, the model its reply parses into),
the headers and timeout of an attempt, whether and how long to wait before the next one
(``BaseClient._after``), and the typed result or error of a response (``parse``).
"""

from __future__ import annotations

import copy
import email.utils
import os
import random
import time
from dataclasses import dataclass, replace
from typing import Any, Generic, Self, TypeVar

import httpx
from pydantic import BaseModel

from candor_client import _http
from candor_client._http import HTTPResponse
from candor_client.errors import CandorConnectionError, CandorTimeoutError, error_for
from candor_client.models import (
    Answer,
    Calibration,
    FeedbackResult,
    Health,
    Policy,
    Score,
    payload,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=5.0)  # a full cascade on a CPU takes a while
DEFAULT_MAX_RETRIES = 2
RETRY_STATUSES = frozenset({429, 503})
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 60.0

# what a send may raise: each becomes a retry or the client's typed error (``_after``)
SEND_ERRORS = (*_http.CONNECT_ERRORS, *_http.TIMEOUT_ERRORS, *_http.TRANSPORT_ERRORS)

M = TypeVar("M", bound=BaseModel)
HttpT = TypeVar("HttpT")


@dataclass(frozen=True)
class Options:
    """Per-client settings; ``with_options`` copies them with overrides."""

    base_url: str
    api_key: str | None
    timeout: httpx.Timeout
    max_retries: int

    @classmethod
    def resolve(cls, base_url: str | None, api_key: str | None,
                timeout: float | httpx.Timeout | None, max_retries: int | None) -> Options:
        """Arguments first, then ``CANDOR_BASE_URL`` / ``CANDOR_API_KEY``, then defaults."""
        url = base_url or os.environ.get("CANDOR_BASE_URL") or DEFAULT_BASE_URL
        key = api_key if api_key is not None else os.environ.get("CANDOR_API_KEY")
        return cls(url.rstrip("/"), key or None, as_timeout(timeout),
                   DEFAULT_MAX_RETRIES if max_retries is None else max_retries)

    def headers(self) -> dict[str, str]:
        h = {"Accept": "application/json", "User-Agent": "candor-client/0.1"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def override(self, timeout: float | httpx.Timeout | None,
                 max_retries: int | None) -> Options:
        return replace(
            self, timeout=self.timeout if timeout is None else as_timeout(timeout),
            max_retries=self.max_retries if max_retries is None else max_retries,
        )


def as_timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    if timeout is None:
        return DEFAULT_TIMEOUT
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


@dataclass(frozen=True)
class Call(Generic[M]):
    """One endpoint's request, and the model a 2xx reply parses into."""

    method: str
    path: str
    model: type[M]
    body: dict[str, Any] | None = None


def answer_call(question: str, *, context: str | None, system: str | None, task: str,
                max_tokens: int | None, policy: Policy | dict[str, Any] | None,
                return_samples: bool, return_logprobs: bool, claims: bool = False,
                ) -> Call[Answer]:
    pol = Policy.model_validate(policy or {}).model_dump(exclude_defaults=True)
    return Call("POST", "/v1/answer", Answer, payload(
        question=question, context=context, system=system, task=task, max_tokens=max_tokens,
        policy=pol or None, return_samples=return_samples or None,
        return_logprobs=return_logprobs or None, claims=claims or None))


def score_call(question: str, answer: str, *, samples: list[str] | None,
               token_logprobs: list[float] | None, top_logprobs: list[list[float]] | None,
               context: str | None, task: str, profile: str | None) -> Call[Score]:
    return Call("POST", "/v1/score", Score, payload(
        question=question, answer=answer, samples=samples, token_logprobs=token_logprobs,
        top_logprobs=top_logprobs, context=context, task=task, profile=profile))


def feedback_call(id: str, correct: bool) -> Call[FeedbackResult]:
    return Call("POST", "/v1/feedback", FeedbackResult, {"id": id, "correct": correct})


CALIBRATION = Call("GET", "/v1/calibration", Calibration)


class BaseClient(Generic[HttpT]):
    """Options, requests and retry decisions of a client over ``HttpT``; a subclass adds
    the I/O: send an attempt, sleep between attempts, close the pool."""

    _opts: Options
    _http: HttpT
    _owns_http: bool

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float | httpx.Timeout | None = None, max_retries: int | None = None,
                 http_client: HttpT | None = None) -> None:
        self._opts = Options.resolve(base_url, api_key, timeout, max_retries)
        self._owns_http = http_client is None
        self._http = self._new_http() if http_client is None else http_client

    def _new_http(self) -> HttpT:
        """The connection pool this client owns when the caller brings none."""
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return self._opts.base_url

    def with_options(self, *, timeout: float | httpx.Timeout | None = None,
                     max_retries: int | None = None) -> Self:
        """A copy with other timeout/retries, sharing this client's connection pool."""
        clone = copy.copy(self)
        clone._opts = self._opts.override(timeout, max_retries)
        clone._owns_http = False
        return clone

    def _attempt(self, method: str, path: str, json: dict[str, Any] | None) -> dict[str, Any]:
        """The keyword arguments of one attempt's ``request`` (``httpx`` or ``httpx2``)."""
        opts = self._opts
        return {"method": method, "url": opts.base_url + path, "json": json,
                "headers": opts.headers(), "timeout": _http.as_tuple(opts.timeout)}

    def _retries(self, retry: bool) -> int:
        return self._opts.max_retries if retry else 0

    def _after(self, method: str, path: str, outcome: HTTPResponse | Exception,
               attempt: int, max_retries: int) -> HTTPResponse | float:
        """What an attempt's outcome (a response, or the transport error it raised) leads
        to: the response to return, or the seconds to wait before the next attempt. A
        transport error not retried becomes the client's typed error."""
        if isinstance(outcome, Exception):
            if isinstance(outcome, _http.CONNECT_ERRORS):
                if should_retry(None, attempt, max_retries):
                    return retry_delay(None, attempt)
                raise CandorConnectionError(
                    f"cannot reach {self._opts.base_url}: {outcome}") from outcome
            if isinstance(outcome, _http.TIMEOUT_ERRORS):
                raise CandorTimeoutError(f"{method} {path} timed out: {outcome}") from outcome
            raise CandorConnectionError(f"{method} {path} failed: {outcome}") from outcome
        if should_retry(outcome, attempt, max_retries):
            return retry_delay(outcome, attempt)
        return outcome


def should_retry(response: HTTPResponse | None, attempt: int, max_retries: int) -> bool:
    """Retry connection failures (``response is None``) and 429/503, at most ``max_retries``."""
    if attempt >= max_retries:
        return False
    return response is None or response.status_code in RETRY_STATUSES


def retry_delay(response: HTTPResponse | None, attempt: int) -> float:
    """``Retry-After`` (seconds or HTTP date, capped) if sent, else backoff with jitter."""
    if response is not None:
        after = parse_retry_after(response.headers.get("Retry-After"))
        if after is not None:
            return min(after, MAX_RETRY_AFTER_S)
    backoff = min(INITIAL_BACKOFF_S * 2**attempt, MAX_BACKOFF_S)
    return float(backoff * (1 - 0.25 * random.random()))


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse(response: HTTPResponse, model: type[M]) -> M:
    """The typed body of a 2xx response; the typed exception otherwise."""
    if response.status_code >= 400:
        raise error_for(response)
    return model.model_validate(response.json())


def check_live(live: HTTPResponse) -> None:
    """``/healthz``: the process answers (anything else is the typed error)."""
    if live.status_code >= 400:
        raise error_for(live)


def health_from(ready: HTTPResponse) -> Health:
    """``/readyz`` -> ``Health``: 200 ready, 503 not ready (with the server's reason)."""
    if ready.status_code == 503:
        err = error_for(ready)
        return Health(live=True, ready=False, detail=err.message)
    if ready.status_code >= 400:
        raise error_for(ready)
    body = ready.json()
    return Health(live=True, ready=True, model=body.get("model"))
