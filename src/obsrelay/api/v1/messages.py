"""The native endpoints for user status messages and live-only events of a site."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from obsrelay.api.body import StrictJsonRoute
from obsrelay.api.deps import event_log, message_service
from obsrelay.api.permissions import SiteAsEventSource, SiteAsMessenger, SiteForReading
from obsrelay.api.v1.models import (
    ERRORS,
    MAX_BATCH,
    EventIn,
    MessageBatchIn,
    MessageBatchOut,
    MessageIn,
    MessageOut,
    MessagePageOut,
)
from obsrelay.domain.errors import InvalidInput
from obsrelay.domain.jobs import validate_ulid
from obsrelay.services.messages import MessageService
from obsrelay.services.stream import EventLog

router = APIRouter(prefix="/api/v1/sites/{site}", responses=ERRORS, route_class=StrictJsonRoute)
Messages = Annotated[MessageService, Depends(message_service)]


@router.post("/messages", status_code=201, tags=["messages"], summary="Post a message")
async def post_message(site: SiteAsMessenger, body: MessageIn, messages: Messages) -> MessageOut:
    return MessageOut.of(await messages.post(site, body.message, body.level, body.timestamp))


@router.post(
    "/messages/batch",
    status_code=201,
    tags=["messages"],
    summary=f"Post up to {MAX_BATCH} messages at once, in order (one request of the rate limit)",
)
async def post_messages(
    site: SiteAsMessenger, body: MessageBatchIn, messages: Messages
) -> MessageBatchOut:
    posted = await messages.post_many(
        site, [(item.message, item.level, item.timestamp) for item in body.messages]
    )
    return MessageBatchOut(messages=[MessageOut.of(message) for message in posted])


@router.get("/messages", tags=["messages"], summary="A site's messages, a page at a time")
async def list_messages(
    site: SiteForReading,
    messages: Messages,
    after: Annotated[
        str | None, Query(max_length=26, description="The `next_after` of the previous page.")
    ] = None,
    since: Annotated[
        float | None,
        Query(allow_inf_nan=False, description="Only messages dated at or after (epoch seconds)."),
    ] = None,
    before: Annotated[
        str | None,
        Query(
            max_length=26,
            description="The page just before this message's `ulid`, oldest first: "
            "scrolling back. Not with `after` or `since`.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MessagePageOut:
    if before is not None:
        if after is not None or since is not None:
            raise InvalidInput("'before' pages back on its own: leave out 'after' and 'since'.")
        older = await messages.before(site, validate_ulid(before, "before"), limit)
        return MessagePageOut(
            messages=[MessageOut.of(message) for message in older], next_after=None
        )
    cursor = None if after is None else validate_ulid(after, "after")
    page = await messages.page(site, after=cursor, since=since, limit=limit)
    return MessagePageOut(
        messages=[MessageOut.of(message) for message in page.messages],
        next_after=page.next_after,
    )


@router.post(
    "/events",
    status_code=202,
    tags=["events"],
    summary="Push a live event to the site's datastream (not stored)",
)
async def push_event(
    site: SiteAsEventSource, body: EventIn, events: EventLog = Depends(event_log)
) -> dict[str, Any]:
    await events.publish_live(site, body.topic, body.data)
    return {"site": site, "topic": body.topic, "stored": False}
