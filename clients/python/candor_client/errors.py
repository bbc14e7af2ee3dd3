"""Typed exceptions that mirror Candor's one error shape ``{"error": {type, message, param}}``.

``CandorAPIError`` carries the HTTP status and the parsed body; one subclass per status
family lets callers branch with ``except`` instead of comparing numbers.
"""

from __future__ import annotations

from typing import Any

from candor_client._http import HTTPResponse


class CandorError(Exception):
    """Base of every exception this client raises."""


class CandorConnectionError(CandorError):
    """The server could not be reached (after the retries)."""


class CandorTimeoutError(CandorConnectionError):
    """The request ran past the client's timeout."""


class CandorAPIError(CandorError):
    """The server answered with an error status."""

    def __init__(self, response: HTTPResponse) -> None:
        self.response = response
        self.status_code = response.status_code
        self.body: Any = _json_or_none(response)
        err = self.body.get("error") if isinstance(self.body, dict) else None
        err = err if isinstance(err, dict) else {}
        self.type: str = str(err.get("type") or "http_error")
        self.message: str = str(err.get("message") or response.text[:500] or response.reason_phrase)
        self.param: str | None = err.get("param")
        retry_after = response.headers.get("Retry-After")
        self.retry_after: str | None = retry_after
        super().__init__(f"{self.status_code} {self.type}: {self.message}")


class BadRequestError(CandorAPIError):
    """400/413/422: the request itself is wrong; retrying will not help."""


class UnauthorizedError(CandorAPIError):
    """401/403: missing or wrong API key."""


class NotFoundError(CandorAPIError):
    """404: unknown path or id (e.g. feedback for an id the server never issued)."""


class OverloadedError(CandorAPIError):
    """429: too many requests in flight; retried with backoff, then raised."""


class UnavailableError(CandorAPIError):
    """503: the engine is not ready (loading or failed); retried, then raised."""


class DeadlineExceededError(CandorAPIError):
    """504: the request's budget ran out before a first answer."""


class InternalServerError(CandorAPIError):
    """Any other 5xx."""


def _json_or_none(response: HTTPResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


_BY_STATUS: dict[int, type[CandorAPIError]] = {
    400: BadRequestError, 413: BadRequestError, 422: BadRequestError,
    401: UnauthorizedError, 403: UnauthorizedError, 404: NotFoundError,
    429: OverloadedError, 503: UnavailableError, 504: DeadlineExceededError,
}


def error_for(response: HTTPResponse) -> CandorAPIError:
    """The exception for an error response (status >= 400)."""
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else CandorAPIError
    return cls(response)
