"""Who is making a request: the one place that authentication plugs into.

Until user authentication exists, obsrelay trusts what the request says: the
compatible `newjob` takes the user from its body (as the hosted service's clients send
it), the native API acts as an anonymous user.
"""

from typing import Any

from fastapi import Depends, Request

from obsrelay.api.body import json_object, require
from obsrelay.domain.jobs import Identity, validate_name, validate_roles

ANONYMOUS = Identity(user_id="anonymous", user_name="anonymous", roles=())


async def user_from_compat_body(body: dict[str, Any] = Depends(json_object)) -> Identity:
    """The user of a compatible `newjob` request (read from its body)."""
    require(body, "user_name", "user_id")
    roles = validate_roles(body["user_roles"]) if "user_roles" in body else ()
    return Identity(
        user_id=validate_name(body.get("user_id"), "user_id"),
        user_name=validate_name(body.get("user_name"), "user_name"),
        roles=roles,
    )


async def user(request: Request) -> Identity:
    """The user of a native API request."""
    return ANONYMOUS
