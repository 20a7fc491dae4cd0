"""The hosted datastream, for the real front end: a site's jobs and messages in the
hosted service's frames, rendered here from obsrelay's own events.

The browser connects to `/datastream?site=mrc1` (the path is configurable), sends
`{"action": "updatesubscribersite", "site": ...}` to switch site, and receives text
frames `{"site", "topic", "data", "id"}`: topic "jobs" with the job in the hosted
jobs service's form, "userstatus" with the message in the hosted logs service's
form. `id` is the event's number in the site's stream, as a string; a client that
reconnects with `?since=<id>` is first replayed every stored event after it.
Live-only topics (posted to /api/v1/sites/{site}/events) carry no id. Serving,
replay and the slow-client policy are api/streaming.py's.
"""

import json
from typing import Any

from fastapi import WebSocket

from obsrelay.api.compat.wire import job_to_wire, legacy_json, message_to_wire
from obsrelay.api.deps import services_of
from obsrelay.api.permissions import credentials as credentials_of
from obsrelay.api.streaming import (
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN_LATER,
    Connection,
    parse_since,
    serve,
)
from obsrelay.api.wsframes import encode_text_frame
from obsrelay.auth.access import Action
from obsrelay.domain.errors import InvalidInput, ObsrelayError
from obsrelay.domain.jobs import validate_site
from obsrelay.services.stream import TOPIC_JOB, TOPIC_MESSAGE, TOPIC_PRESENCE, StreamEvent
from obsrelay.store.database import DatabaseUnavailable

# The hosted service's names for obsrelay's own topics. No live event may use them.
LEGACY_TOPICS = {TOPIC_JOB: "jobs", TOPIC_MESSAGE: "userstatus"}
# obsrelay's topics that the hosted datastream never had: they are not sent here, since
# the real front end logs every unknown topic to the browser's console.
NATIVE_ONLY_TOPICS = frozenset({TOPIC_PRESENCE})


def _legacy_data(event: StreamEvent) -> tuple[str, str]:
    """The event's topic and data (JSON text) as the hosted datastream sent them."""
    if event.topic == TOPIC_JOB:
        return LEGACY_TOPICS[TOPIC_JOB], legacy_json(job_to_wire(json.loads(event.data_json)))
    if event.topic == TOPIC_MESSAGE:
        message = json.loads(event.data_json)
        return LEGACY_TOPICS[TOPIC_MESSAGE], legacy_json(message_to_wire(message))
    return event.topic, event.data_json  # a live event goes out as it came


def render_legacy_frame(event: StreamEvent) -> bytes:
    """The event as the hosted datastream's websocket frame; nothing for a native-only one."""
    if event.topic in NATIVE_ONLY_TOPICS:
        return b""
    topic, data = _legacy_data(event)
    head = f'{{"site":{json.dumps(event.site)},"topic":{json.dumps(topic)},"data":'
    tail = "}" if event.seq is None else f',"id":"{event.seq}"}}'
    return encode_text_frame((head + data + tail).encode())


def _site_from(message: Any) -> str | None:
    """The site of an `updatesubscribersite` frame, or None for any other frame."""
    if not isinstance(message, dict) or message.get("action") != "updatesubscribersite":
        return None
    try:
        return validate_site(message.get("site"))
    except InvalidInput:
        return None


async def _switch_site(connection: Connection, text: str) -> None:
    """`updatesubscribersite` moves the client to another site, live from now, if it may
    read that site; any other frame is ignored, as the hosted datastream did."""
    try:
        site = _site_from(json.loads(text))
    except ValueError:
        return
    if site is None or site == connection.site:
        return
    websocket = connection.websocket
    running = services_of(websocket)
    try:
        await running.access.ensure(Action.READ, site, credentials_of(websocket))
    except (ObsrelayError, DatabaseUnavailable):
        return  # not allowed to read that site (or not now): stay where it is
    connection.cursor = 0
    try:
        connection.cursor = await running.hub.move(connection, site)
    except DatabaseUnavailable:
        connection.end(CLOSE_TRY_AGAIN_LATER)


async def datastream(websocket: WebSocket) -> None:
    try:
        site = validate_site(websocket.query_params.get("site"))
        since = parse_since(websocket.query_params.get("since"))
    except (InvalidInput, ValueError):
        # Refused before the handshake completes: the client sees HTTP 403.
        await websocket.close(CLOSE_POLICY)
        return
    await serve(websocket, site, since, render_legacy_frame, "datastream", _switch_site)
