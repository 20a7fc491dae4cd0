"""JSON in and out of both APIs, in one place: reading request bodies, and encoding the
answers that are made before a claim commits (`encode_strictly`).

The site software posts `data=json.dumps(...)` with no Content-Type, so the compatible
endpoints parse the bytes themselves (`json_object`). The native endpoints are
FastAPI routes whose body FastAPI parses; `StrictJsonRoute` makes it parse with the
same `parse_json`. Either way a body is checked against the value rules
(domain/values.py) as a whole, before any endpoint sees it, and what is wrong is
named in a sentence.
"""

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from obsrelay.domain.errors import InvalidInput
from obsrelay.domain.values import check_json, quote

# Where a request's parsed body is kept, in its ASGI scope (a plain dict: asking
# `request.state` for a missing name raises and catches an AttributeError each time).
_BODY_KEY = "obsrelay.json_body"


def _refuse_constant(name: str) -> Any:
    raise InvalidInput(f"The request body holds {name}, which is not a number JSON allows.")


# One decoder for every body, and one encoder: `json.loads` and `json.dumps` with an
# option build a new one each call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_STRICT = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def encode_strictly(value: Any) -> bytes:
    """`value` as JSON bytes, or an error when it cannot be sent as valid JSON (NaN, a lone
    surrogate): a claim encodes its answer this way before it commits."""
    return _STRICT.encode(value).encode("utf-8")


def parse_json(raw: bytes) -> Any:
    """The JSON value of a request body, or InvalidInput saying what is wrong with it."""
    if not raw.strip():
        raise InvalidInput("The request body is empty; send a JSON object.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("The request body is not UTF-8 text.") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"The request body is not valid JSON: {error.msg}.") from None
    except RecursionError:
        raise InvalidInput("The request body is nested too deeply.") from None
    except ValueError:
        # Python refuses to read integers of thousands of digits.
        raise InvalidInput("The request body holds a number too large to store.") from None
    check_json(value)
    return value


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (parsed once per request and cached)."""
    cached = request.scope.get(_BODY_KEY)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    value = parse_json(await request.body())
    if not isinstance(value, dict):
        kind = "a list" if isinstance(value, list) else quote(value)
        raise InvalidInput(f"The request body must be a JSON object, not {kind}.")
    request.scope[_BODY_KEY] = value
    return value


def require(body: dict[str, Any], *keys: str) -> None:
    """Raises InvalidInput naming every one of `keys` that the body lacks."""
    missing = [key for key in keys if key not in body]
    if len(missing) == 1:
        raise InvalidInput(f"Missing required key '{missing[0]}'.")
    if missing:
        names = ", ".join(f"'{key}'" for key in missing)
        raise InvalidInput(f"Missing required keys {names}.")


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_json(await self.body())
            except InvalidInput as error:
                # FastAPI turns anything else raised here into a vague 400.
                raise HTTPException(400, error.message) from None
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body FastAPI reads with `parse_json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict_handler
