"""How errors look on the wire, in one place: each error type's status code, and the body.

The compatible APIs (/jobs, /logs) answer an error with a JSON string: the hosted
front end shows the body in a toast as `${status} error: ${data}`, so it must read as
a sentence. The native API answers `{"detail": sentence}`. `getnewjobs` always answers
a JSON list (the site software's poller dies on anything else), so there the sentence
travels in the `X-Obsrelay-Error` header. Every header value made from a sentence goes
through `header_safe`: a control character in a header makes the HTTP server drop the
connection without any answer.
"""

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from obsrelay.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ObsrelayError,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from obsrelay.domain.values import quote
from obsrelay.store.database import DatabaseUnavailable

log = logging.getLogger("obsrelay.api")

COMPAT_PREFIXES = ("/jobs/", "/logs/")
LIST_ONLY_PATHS = ("/jobs/getnewjobs",)
ERROR_HEADER = "X-Obsrelay-Error"
_HEADER_LIMIT = 500

STATUS_BY_ERROR: dict[type[ObsrelayError], int] = {
    InvalidInput: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    RateLimited: 429,
    Unavailable: 503,
}
DATABASE_SENTENCE = "The database is not answering; try again shortly."


def status_for(error: ObsrelayError) -> int:
    for kind, status in STATUS_BY_ERROR.items():
        if isinstance(error, kind):
            return status
    return 400


def headers_for(error: ObsrelayError) -> dict[str, str]:
    """The headers that go with an error's status (how to authenticate, when to retry)."""
    if isinstance(error, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(error, RateLimited):
        return {"Retry-After": str(error.retry_after)}
    return {}


def header_safe(text: str) -> str:
    """`text` as a header value: printable ASCII only, everything else escaped, cut short."""
    safe = "".join(
        char if " " <= char <= "~" else f"\\u{ord(char):04x}" if ord(char) < 0x10000 else "?"
        for char in text[:_HEADER_LIMIT]
    )
    return safe[:_HEADER_LIMIT]


def error_response(path: str, status: int, message: str, **headers: str) -> JSONResponse:
    """The error body the client at `path` can read."""
    all_headers = {ERROR_HEADER: header_safe(message), **headers}
    if path in LIST_ONLY_PATHS:
        return JSONResponse([], status_code=status, headers=all_headers)
    if path.startswith(COMPAT_PREFIXES):
        return JSONResponse(message, status_code=status, headers=all_headers)
    return JSONResponse({"detail": message}, status_code=status, headers=all_headers)


def response_for(path: str, error: Exception) -> JSONResponse | None:
    """The answer for an error the rules, the policy or the store raised; None for a bug."""
    if isinstance(error, ObsrelayError):
        return error_response(path, status_for(error), error.message, **headers_for(error))
    if isinstance(error, DatabaseUnavailable):
        return error_response(path, 503, DATABASE_SENTENCE, **{"Retry-After": "5"})
    if isinstance(error, StarletteHTTPException):
        return error_response(path, error.status_code, str(error.detail), **(error.headers or {}))
    return None


def validation_sentence(errors: Sequence[Any]) -> str:
    """One sentence from pydantic's validation errors."""
    parts = []
    for error in errors[:3]:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        where = ".".join(location)
        if error.get("type") == "json_invalid":
            parts.append("The request body is not valid JSON.")
        elif error.get("type") == "missing":
            parts.append(f"Missing required field {quote(where)}.")
        elif where:
            parts.append(f"Field {quote(where)}: {error.get('msg', 'is invalid')}.")
        else:
            parts.append(f"The request body is invalid: {error.get('msg', 'unreadable')}.")
    return " ".join(parts) or "The request is invalid."


def install_error_handlers(app: FastAPI) -> None:
    async def on_known_error(request: Request, error: Exception) -> JSONResponse:
        response = response_for(request.url.path, error)
        assert response is not None
        return response

    async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return error_response(request.url.path, 422, validation_sentence(error.errors()))

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(
            request.url.path, 500, "The server failed to handle this request; it was logged."
        )

    app.add_exception_handler(ObsrelayError, on_known_error)
    app.add_exception_handler(DatabaseUnavailable, on_known_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_known_error)
    app.add_exception_handler(Exception, on_unexpected)
