"""The one exception tree of the service. Routes raise; ``api/errors.py`` maps to HTTP."""

from __future__ import annotations


class CandorError(Exception):
    """Base class. ``status`` and ``type`` pick the HTTP answer; ``param`` names a field."""

    status: int = 500
    type: str = "internal_error"

    def __init__(
        self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}


class BadRequest(CandorError):
    status, type = 400, "invalid_request_error"


class Unauthorized(CandorError):
    status, type = 401, "authentication_error"


class Forbidden(CandorError):
    status, type = 403, "permission_error"


class ArtifactRejected(CandorError):
    """A calibration artifact refused by a reload (the active one stays)."""

    status, type = 400, "calibration_error"


class NotFound(CandorError):
    status, type = 404, "not_found_error"


class RequestTimeout(CandorError):
    """The request body did not arrive within ``body_timeout_s`` (the request guard)."""

    status, type = 408, "request_timeout"


class PayloadTooLarge(CandorError):
    status, type = 413, "payload_too_large"


class Unprocessable(CandorError):
    """A request that does not validate against its schema (FastAPI's validation error, as
    ``api/errors.py`` renders it: the same type as ``BadRequest``, status 422)."""

    status, type = 422, BadRequest.type


class Overloaded(CandorError):
    status, type = 429, "overloaded_error"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class EngineUnavailable(CandorError):
    status, type = 503, "engine_unavailable"


class Draining(CandorError):
    """This replica is shutting down (SIGTERM): the request never started; retry it on
    another replica. The connection is closed after the answer."""

    status, type = 503, "draining"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s),
                                           "Connection": "close"})


class DeadlineExceeded(CandorError):
    status, type = 504, "deadline_exceeded"


class CalibrationError(CandorError):
    """A calibration artifact that cannot be used (raised at startup, never silently ignored)."""

    status, type = 500, "calibration_error"
