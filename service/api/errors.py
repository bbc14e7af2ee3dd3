"""One error shape for every failure: ``{"error": {type, message, param, code}}``.

Routes raise ``CandorError`` subclasses; validation errors name the offending field and
say exactly what it must be (``max_tokens: must be an integer, not true``);
anything unexpected becomes a 500 whose message carries no stack trace. ``render`` is the
one way an error of the tree becomes a response: the exception handlers use it, and so
does the request guard (``middleware.py``: 401, 408, 413), which answers before any route.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api_types import text_problem
from service.errors import (
    BadRequest,
    CandorError,
    EngineUnavailable,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    Unauthorized,
    Unprocessable,
)
from service.schemas import ErrorBody, ErrorResponse

log = logging.getLogger(__name__)

# The type of a Starlette HTTPException (an unknown path, a wrong method) by its status:
# the error tree's where it has that status, else the two Starlette alone raises.
_STATUS_TYPES = {
    **{cls.status: cls.type for cls in (BadRequest, Unauthorized, NotFound, PayloadTooLarge,
                                        Unprocessable, Overloaded, EngineUnavailable)},
    405: "method_not_allowed", 415: "unsupported_media_type",
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


def _printable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (a lone surrogate in a field name a client
    sent) written as an escape, so the error itself can always be sent."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(status: int, type_: str, message: str,
               param: str | None = None) -> dict[str, Any]:
    """The one error body, ``{"error": {type, message, param, code}}`` (also sent as the
    last event of a stream that fails after its first token)."""
    return ErrorResponse(error=ErrorBody(
        type=type_, message=_printable(message[:2000]),
        param=None if param is None else _printable(param[:500]), code=status)).model_dump()


def error_response(status: int, type_: str, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, type_, message, param), status_code=status,
                        headers=headers)


def render(exc: CandorError) -> JSONResponse:
    """The response for an error of the tree: its status, type, message, param, headers."""
    return error_response(exc.status, exc.type, exc.message, exc.param, exc.headers)


def _observe(request: Request, status: int) -> None:
    state = getattr(request.app.state, "candor", None)
    if state is not None:
        state.metrics.observe_error(request.url.path, status)


def _loc(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


# What a field of a strict type (service/api_types.py) must be, by pydantic's error type.
_MUST_BE = {
    "int_type": "must be an integer", "bool_type": "must be true or false",
    "float_type": "must be a number", "finite_number": "must be a finite number",
    "string_type": "must be a string",
}


def _json_kind(value: Any) -> str:
    """How the JSON value reads: ``true``, ``null``, ``NaN``, ``8.5``, ``a string``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**18 else "a large integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _message(error: Any) -> str:
    """Pydantic's message, exact for the strict types and without its "Value error, "."""
    if error.get("type") == "string_unicode":  # a lone surrogate where no Text check ran
        value = error.get("input")  # (a str field not typed Text; a field name: the body)
        problem = text_problem(value) if isinstance(value, str) else None
        return problem or "text must be valid Unicode (a field name holds a lone surrogate)"
    must = _MUST_BE.get(error.get("type", ""))
    if must is not None and "input" in error:
        return f"{must}, not {_json_kind(error['input'])}"
    msg = str(error.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


async def _candor(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CandorError)
    if exc.status >= 500:
        log.warning("%s on %s: %s", exc.type, request.url.path, exc.message)
    _observe(request, exc.status)
    return render(exc)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    param = _loc(tuple(first.get("loc", ())))
    msgs = "; ".join(f"{_loc(tuple(e.get('loc', ())))}: {_message(e)}" for e in errors[:5])
    _observe(request, Unprocessable.status)
    return render(Unprocessable(msgs, param=param))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    _observe(request, exc.status_code)
    type_ = _STATUS_TYPES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, type_, str(exc.detail), None,
                          dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    _observe(request, CandorError.status)
    return render(CandorError("internal server error; see the server log"))


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CandorError, _candor)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
