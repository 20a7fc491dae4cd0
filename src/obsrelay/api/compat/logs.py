"""The hosted user status service's endpoints under /logs, as the site and browser call them."""

import math

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from obsrelay.api.body import json_object, require
from obsrelay.api.compat.wire import message_to_wire
from obsrelay.api.deps import message_service, services_of
from obsrelay.api.permissions import acting_as_site, ensure
from obsrelay.api.rawroute import RequestRoute
from obsrelay.auth.access import Action
from obsrelay.domain.errors import InvalidInput
from obsrelay.domain.jobs import validate_site
from obsrelay.domain.presence import Call
from obsrelay.domain.values import quote
from obsrelay.services.messages import MessageService

router = APIRouter(prefix="/logs", tags=["compatible: user status"], route_class=RequestRoute)


@router.post("/newlog", summary="Post a user status message (from the site)")
async def newlog(
    request: Request,
) -> JSONResponse:
    body, messages = await json_object(request), services_of(request).messages
    require(body, "site", "log_message")
    site = validate_site(body["site"])
    async with acting_as_site(request, site, Call.MESSAGE, count="messages"):
        message = await messages.post(
            site,
            body["log_message"],
            body.get("log_level"),
            body.get("timestamp"),
        )
    return JSONResponse(message_to_wire(message.to_data()))


@router.get("/recent-logs", summary="A site's messages newer than after_time (seconds)")
async def recent_logs(
    request: Request,
    site: str | None = Query(None, description="The site's name."),
    after_time: str | None = Query(
        None, description="Seconds since the epoch; default: a day ago."
    ),
    messages: MessageService = Depends(message_service),
) -> JSONResponse:
    if site is None:
        raise InvalidInput("Missing required query parameter 'site'.")
    site = validate_site(site)
    after = _seconds(after_time)
    await ensure(request, Action.READ, site)
    found = await messages.since(site, after)
    return JSONResponse([message_to_wire(message.to_data()) for message in found])


def _seconds(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise InvalidInput(
            f"'after_time' must be seconds since the epoch, not {quote(value)}."
        ) from None
    if not math.isfinite(seconds):
        raise InvalidInput("'after_time' must be a finite number of seconds.")
    return seconds
