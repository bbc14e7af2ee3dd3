"""What the sync and async clients share: options, request bodies, retry decisions.

The two clients differ only in I/O (``httpx.Client`` vs ``httpx.AsyncClient``, ``sleep``);
everything that decides *what* to send and *whether* to retry lives here, once.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from candor_client._http import HTTPResponse
from candor_client.errors import error_for
from candor_client.models import Health, Policy, payload

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=5.0)  # a full cascade on a CPU takes a while
DEFAULT_MAX_RETRIES = 2
RETRY_STATUSES = frozenset({429, 503})
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 60.0

M = TypeVar("M", bound=BaseModel)


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


def answer_body(question: str, *, context: str | None, system: str | None, task: str,
                max_tokens: int | None, policy: Policy | dict[str, Any] | None,
                return_samples: bool, return_logprobs: bool) -> dict[str, Any]:
    pol = Policy.model_validate(policy or {}).model_dump(exclude_defaults=True)
    return payload(question=question, context=context, system=system, task=task,
                   max_tokens=max_tokens, policy=pol or None,
                   return_samples=return_samples or None,
                   return_logprobs=return_logprobs or None)


def score_body(question: str, answer: str, *, samples: list[str] | None,
               token_logprobs: list[float] | None, top_logprobs: list[list[float]] | None,
               context: str | None, task: str, profile: str | None = None) -> dict[str, Any]:
    return payload(question=question, answer=answer, samples=samples,
                   token_logprobs=token_logprobs, top_logprobs=top_logprobs,
                   context=context, task=task, profile=profile)


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


def health_from(ready: HTTPResponse) -> Health:
    """``/readyz`` -> ``Health``: 200 ready, 503 not ready (with the server's reason)."""
    if ready.status_code == 503:
        err = error_for(ready)
        return Health(live=True, ready=False, detail=err.message)
    if ready.status_code >= 400:
        raise error_for(ready)
    body = ready.json()
    return Health(live=True, ready=True, model=body.get("model"))
