"""Credentials on requests: the FastAPI dependencies that apply the access policy.

The rules are in auth/access.py; this module only takes the credentials off the
request (Authorization, X-Site-Key, `?token=` on the websocket) and calls them.
"""

from typing import Annotated, Any

from fastapi import Depends, Path, Request
from starlette.requests import HTTPConnection

from obsrelay.api.body import json_object, require
from obsrelay.auth.access import Access, Credentials
from obsrelay.domain.jobs import Identity, validate_name, validate_roles, validate_site


def access_of(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


def credentials(connection: HTTPConnection) -> Credentials:
    """Authorization and X-Site-Key; on a websocket also `?token=`, since a browser
    cannot set headers there (not on plain requests: URLs end up in logs)."""
    token = (
        connection.query_params.get("token") if connection.scope["type"] == "websocket" else None
    )
    return Credentials(
        authorization=f"Bearer {token}" if token else connection.headers.get("authorization"),
        site_key=connection.headers.get("x-site-key"),
    )


async def user(request: Request) -> Identity:
    """The signed-in user of a native API request (anonymous in `none` mode)."""
    return await access_of(request).user(credentials(request))


async def user_from_compat_body(
    request: Request, body: dict[str, Any] = Depends(json_object)
) -> Identity:
    """The user of a compatible `newjob`: from the token, or from the body in `none` mode."""
    access = access_of(request)
    if access.checks_users:
        return await access.user(credentials(request))
    require(body, "user_name", "user_id")
    roles = validate_roles(body["user_roles"]) if "user_roles" in body else ()
    return Identity(
        user_id=validate_name(body.get("user_id"), "user_id"),
        user_name=validate_name(body.get("user_name"), "user_name"),
        roles=roles,
    )


async def site_name(site: Annotated[str, Path(description="The site's name, e.g. mrc1.")]) -> str:
    return validate_site(site)


async def site_caller(request: Request, site: str = Depends(site_name)) -> str:
    """The path's site, when the request may act as that site (site keys)."""
    await access_of(request).may_act_as_site(site, credentials(request))
    return site


async def site_reader(request: Request, site: str = Depends(site_name)) -> str:
    """The path's site, when the request may read it (public read)."""
    await access_of(request).may_read(site, credentials(request))
    return site
