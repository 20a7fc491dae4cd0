"""How errors look on the wire, in one place.

The compatible APIs (/jobs, /logs) answer an error with a JSON string: the hosted
front end shows the body in a toast as `${status} error: ${data}`, so it must read as
a sentence. The native API answers `{"detail": sentence}`. `getnewjobs` always answers
a JSON list (the site software's poller dies on anything else), so there the sentence
travels in the `X-Obsrelay-Error` header.
"""

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from obsrelay.auth.tokens import AuthError
from obsrelay.domain.errors import Conflict, InvalidInput, NotFound, ObsrelayError

log = logging.getLogger("obsrelay.api")

COMPAT_PREFIXES = ("/jobs/", "/logs/")
LIST_ONLY_PATHS = ("/jobs/getnewjobs",)
ERROR_HEADER = "X-Obsrelay-Error"

_STATUS_BY_ERROR: dict[type[ObsrelayError], int] = {
    InvalidInput: 400,
    NotFound: 404,
    Conflict: 409,
}


def status_for(error: ObsrelayError) -> int:
    for kind, status in _STATUS_BY_ERROR.items():
        if isinstance(error, kind):
            return status
    return 400


def error_response(path: str, status: int, message: str, **headers: str) -> JSONResponse:
    """The error body the client at `path` can read."""
    all_headers = {ERROR_HEADER: _header_safe(message), **headers}
    if path in LIST_ONLY_PATHS:
        return JSONResponse([], status_code=status, headers=all_headers)
    if path.startswith(COMPAT_PREFIXES):
        return JSONResponse(message, status_code=status, headers=all_headers)
    return JSONResponse({"detail": message}, status_code=status, headers=all_headers)


def _header_safe(message: str) -> str:
    return message.encode("ascii", "replace").decode("ascii").replace("\n", " ")[:500]


def validation_sentence(errors: Sequence[Any]) -> str:
    """One sentence from pydantic's validation errors."""
    parts = []
    for error in errors[:3]:
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        where = ".".join(location)
        if error.get("type") == "json_invalid":
            parts.append("The request body is not valid JSON.")
        elif error.get("type") == "missing":
            parts.append(f"Missing required field '{where}'.")
        elif where:
            parts.append(f"Field '{where}': {error.get('msg', 'is invalid')}.")
        else:
            parts.append(f"The request body is invalid: {error.get('msg', 'unreadable')}.")
    return " ".join(parts) or "The request is invalid."


def install_error_handlers(app: FastAPI) -> None:
    async def on_rule_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ObsrelayError)
        return error_response(request.url.path, status_for(error), error.message)

    async def on_auth_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, AuthError)
        headers = dict(error.headers)
        if error.status == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        return error_response(request.url.path, error.status, error.message, **headers)

    async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        response = error_response(request.url.path, 422, validation_sentence(error.errors()))
        return response

    async def on_http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        return error_response(
            request.url.path, error.status_code, str(error.detail), **(error.headers or {})
        )

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(
            request.url.path, 500, "The server failed to handle this request; it was logged."
        )

    app.add_exception_handler(ObsrelayError, on_rule_error)
    app.add_exception_handler(AuthError, on_auth_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
