"""The access policy as FastAPI dependencies: one per action, each calling `Access.ensure`.

The rules are in auth/access.py; this module takes the credentials off the request
(Authorization, X-Site-Key, `?token=` on the websocket, the client's address) and
names, per endpoint, the action and the kind of request that is counted. The
compatible endpoints, whose site is in the body, call `ensure` the same way.
"""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from starlette.requests import HTTPConnection

from obsrelay.api.body import require
from obsrelay.api.deps import services_of
from obsrelay.auth.access import Access, Action, Actor, Credentials
from obsrelay.domain.jobs import Identity, validate_name, validate_roles, validate_site
from obsrelay.domain.presence import Call


def access_of(connection: HTTPConnection) -> Access:
    return services_of(connection).access


def credentials(connection: HTTPConnection) -> Credentials:
    """Authorization, X-Site-Key and the client's address; on a websocket also `?token=`,
    since a browser cannot set headers there (not on plain requests: URLs end up in logs).
    The address is the forwarded one when a trusted proxy sent the request (see
    api/middleware.py)."""
    token = (
        connection.query_params.get("token") if connection.scope["type"] == "websocket" else None
    )
    client = connection.scope.get("client")
    return Credentials(
        authorization=f"Bearer {token}" if token else connection.headers.get("authorization"),
        site_key=connection.headers.get("x-site-key"),
        address=client[0] if client else "-",
    )


async def ensure(
    request: HTTPConnection,
    action: Action,
    site: str,
    *,
    count: str | None = None,
    fallback_user: Identity | None = None,
) -> Actor:
    """`Access.ensure` for this request's credentials."""
    return await access_of(request).ensure(
        action, site, credentials(request), count=count, fallback_user=fallback_user
    )


@contextlib.asynccontextmanager
async def acting_as_site(
    request: HTTPConnection, site: str, call: Call, *, count: str | None = None
) -> AsyncIterator[Actor]:
    """Runs a site call: `ensure` first, and, when the call succeeded, registers a site
    that did not exist (so a refused call leaves nothing behind).

    A call let in is the site's sign of life (services/presence.py), noted as it starts
    and again as it ends: a long-poll may have waited in between.
    """
    actor = await ensure(request, Action.ACT_AS_SITE, site, count=count)
    presence = services_of(request).presence
    presence.seen(site, call)
    yield actor
    presence.seen(site, call)
    await access_of(request).register_new_site(actor, site)


async def user(request: Request) -> Identity:
    """The signed-in user of a request (anonymous in `none` mode)."""
    return await access_of(request).user(credentials(request))


def body_user(body: dict[str, Any]) -> Identity:
    """The user a compatible `newjob` names in its body: used only in `none` auth mode."""
    require(body, "user_name", "user_id")
    roles = validate_roles(body["user_roles"]) if "user_roles" in body else ()
    return Identity(
        user_id=validate_name(body.get("user_id"), "user_id"),
        user_name=validate_name(body.get("user_name"), "user_name"),
        roles=roles,
    )


async def site_name(site: Annotated[str, Path(description="The site's name, e.g. mrc1.")]) -> str:
    return validate_site(site)


def _site_dependency(action: Action, count: str | None = None) -> Callable[[Request, str], Any]:
    async def dependency(request: Request, site: str = Depends(site_name)) -> str:
        await ensure(request, action, site, count=count)
        return site

    return dependency


def _site_call(call: Call, count: str) -> Callable[[Request, str], Any]:
    async def site_call(request: Request, site: str = Depends(site_name)) -> AsyncIterator[str]:
        # A dependency with yield: the part after it runs once the endpoint succeeded.
        async with acting_as_site(request, site, call, count=count):
            yield site

    return site_call


def _commander(count: str) -> Callable[[Request, str], Awaitable[Actor]]:
    async def dependency(request: Request, site: str = Depends(site_name)) -> Actor:
        return await ensure(request, Action.COMMAND, site, count=count)

    return dependency


# The path's site, once the request may do the named action there.
SiteForReading = Annotated[str, Depends(_site_dependency(Action.READ))]
SiteAsReporter = Annotated[str, Depends(_site_call(Call.STATUS, "updates"))]
SiteAsMessenger = Annotated[str, Depends(_site_call(Call.MESSAGE, "messages"))]
SiteAsEventSource = Annotated[str, Depends(_site_call(Call.EVENT, "events"))]
# The user commanding the path's site.
Commander = Annotated[Actor, Depends(_commander("jobs"))]
