"""One error shape for every failure: ``{"error": {type, message, param, code}}``.

Routes raise ``CandorError`` subclasses; validation errors name the offending field;
anything unexpected becomes a 500 whose message carries no stack trace.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import CandorError
from service.schemas import ErrorBody, ErrorResponse

log = logging.getLogger(__name__)

_STATUS_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
    405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
    422: "invalid_request_error", 429: "overloaded_error", 503: "engine_unavailable",
}

def documented_errors(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for a /v1 route: ``codes`` in the one error shape, plus 401
    (the auth middleware answers it before any router when CANDOR_API_KEYS is set)."""
    out: dict[int | str, dict[str, object]] = {
        401: {"model": ErrorResponse,
              "description": "Missing or wrong API key (only when CANDOR_API_KEYS is set)"},
    }
    out.update({code: {"model": ErrorResponse} for code in codes})
    return out


def error_response(status: int, type_: str, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(type=type_, message=message[:2000], param=param,
                                         code=status))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _observe(request: Request, status: int) -> None:
    state = getattr(request.app.state, "candor", None)
    if state is not None:
        state.metrics.observe_error(request.url.path, status)


def _loc(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def _candor(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CandorError)
    if exc.status >= 500:
        log.warning("%s on %s: %s", exc.type, request.url.path, exc.message)
    _observe(request, exc.status)
    return error_response(exc.status, exc.type, exc.message, exc.param, exc.headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    param = _loc(tuple(first.get("loc", ())))
    msgs = "; ".join(f"{_loc(tuple(e.get('loc', ())))}: {e.get('msg')}" for e in errors[:5])
    _observe(request, 422)
    return error_response(422, "invalid_request_error", msgs, param)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    _observe(request, exc.status_code)
    type_ = _STATUS_TYPES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, type_, str(exc.detail), None,
                          dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    _observe(request, 500)
    return error_response(500, "internal_error", "internal server error; see the server log")


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CandorError, _candor)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
