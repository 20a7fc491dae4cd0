"""Reading the compatible APIs' raw JSON bodies, whatever their Content-Type says.

The site software posts `data=json.dumps(...)` with no Content-Type, so these
endpoints parse the bytes themselves and name what is wrong in a sentence.
"""

import json
from typing import Any

from fastapi import Request

from obsrelay.domain.errors import InvalidInput

_BODY_STATE = "obsrelay_json_body"


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object (parsed once per request and cached)."""
    cached = getattr(request.state, _BODY_STATE, None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    raw = await request.body()
    if not raw.strip():
        raise InvalidInput("The request body is empty; send a JSON object.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("The request body is not UTF-8 text.") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"The request body is not valid JSON: {error.msg}.") from None
    except RecursionError:
        raise InvalidInput("The request body is nested too deeply.") from None
    if not isinstance(value, dict):
        kind = "a list" if isinstance(value, list) else f"{type(value).__name__}"
        raise InvalidInput(f"The request body must be a JSON object, not {kind}.")
    setattr(request.state, _BODY_STATE, value)
    return value


def require(body: dict[str, Any], *keys: str) -> None:
    """Raises InvalidInput naming every one of `keys` that the body lacks."""
    missing = [key for key in keys if key not in body]
    if len(missing) == 1:
        raise InvalidInput(f"Missing required key '{missing[0]}'.")
    if missing:
        names = ", ".join(f"'{key}'" for key in missing)
        raise InvalidInput(f"Missing required keys {names}.")
