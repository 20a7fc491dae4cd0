"""The datastream websocket: pushes a site's jobs and messages to browsers as they happen.

The browser connects to `/datastream?site=mrc1` (the path is configurable), sends
`{"action": "updatesubscribersite", "site": ...}` to switch site, and receives text
frames `{"site", "topic", "data", "id"}`. `id` is the event's number in the site's
stream; a client that reconnects with `?since=<id>` is first replayed every stored
event after it. Live-only topics (posted to /api/v1/sites/{site}/events) carry no id.

Each connection has a bounded queue of frames: a client that falls that far behind
is closed with code 1013 and may resume with `since`. Ping/pong is uvicorn's.
"""

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketState

from obsrelay.domain.errors import InvalidInput
from obsrelay.domain.jobs import validate_site
from obsrelay.services.stream import Hub, StreamEvent

log = logging.getLogger("obsrelay.datastream")

CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN_LATER = 1013
# A client that fell behind has a whole send buffer to read before the close frame.
_CLOSE_TIMEOUT = 10.0


def render_frame(event: StreamEvent) -> str:
    """The frame's text, made once per event and sent to every subscriber."""
    frame: dict[str, Any] = {"site": event.site, "topic": event.topic, "data": event.data}
    if event.seq is not None:
        frame["id"] = str(event.seq)
    return json.dumps(frame, separators=(",", ":"))


class Connection:
    """One websocket subscriber: its site, its position in that site's stream, its queue."""

    def __init__(self, websocket: WebSocket, site: str, queue_frames: int) -> None:
        self.websocket = websocket
        self.site = site
        self.cursor = 0
        self.replaying = False
        self._held: list[tuple[StreamEvent, str]] = []
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(queue_frames)
        self._limit = queue_frames
        self.overflowed = asyncio.Event()

    def offer(self, event: StreamEvent, text: str) -> None:
        if self.replaying:
            self._held.append((event, text))
            if len(self._held) > self._limit:
                self._overflow()
            return
        self._put(event, text)

    async def replay(self, event: StreamEvent, text: str) -> None:
        if event.seq is not None and event.seq <= self.cursor:
            return
        self.cursor = event.seq or self.cursor
        await self._queue.put((event.site, text))

    def end_replay(self) -> None:
        self.replaying = False
        held, self._held = self._held, []
        for event, text in held:
            self._put(event, text)

    def _put(self, event: StreamEvent, text: str) -> None:
        if event.site != self.site or self.overflowed.is_set():
            return
        if event.seq is not None:
            if event.seq <= self.cursor:
                return  # already given (by the replay)
            self.cursor = event.seq
        try:
            self._queue.put_nowait((event.site, text))
        except asyncio.QueueFull:
            self._overflow()

    def _overflow(self) -> None:
        if not self.overflowed.is_set():
            log.info("datastream: closing a client of %s that fell behind", self.site)
            self.overflowed.set()

    async def send_forever(self) -> None:
        while True:
            site, text = await self._queue.get()
            if site == self.site:  # frames of a site the client left are dropped
                await self.websocket.send_text(text)


def _site_from(message: Any) -> str | None:
    """The site of an `updatesubscribersite` frame, or None for any other frame."""
    if not isinstance(message, dict) or message.get("action") != "updatesubscribersite":
        return None
    try:
        return validate_site(message.get("site"))
    except InvalidInput:
        return None


async def datastream(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.hub
    queue_frames: int = websocket.app.state.settings.stream_queue_frames
    try:
        site = validate_site(websocket.query_params.get("site"))
        since_text = websocket.query_params.get("since")
        since = int(since_text) if since_text else None
        if since is not None and since < 0:
            raise ValueError
    except (InvalidInput, ValueError):
        # Refused before the handshake completes: the client sees HTTP 403.
        await websocket.close(CLOSE_POLICY)
        return
    await websocket.accept()
    connection = Connection(websocket, site, queue_frames)
    connection.replaying = since is not None
    connection.cursor = since or 0
    tasks = [
        asyncio.create_task(connection.send_forever()),
        asyncio.create_task(_receive(connection, hub)),
        asyncio.create_task(_follow(connection, hub, since)),
    ]
    try:
        # Whichever ends first ends the connection: the client left, a send failed,
        # or the client fell too far behind.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unsubscribe(connection)
        for task in tasks:
            task.cancel()
        # A send blocked on a client that reads nothing does not end when cancelled
        # (the websocket library waits for the socket to drain): do not wait for it.
        await asyncio.wait(tasks, timeout=0.1)
        if websocket.client_state is WebSocketState.CONNECTED:
            code = CLOSE_TRY_AGAIN_LATER if connection.overflowed.is_set() else 1000
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(code), _CLOSE_TIMEOUT)


async def _follow(connection: Connection, hub: Hub, since: int | None) -> None:
    """Subscribes (replaying after `since`), then waits until the client falls behind."""
    connection.cursor = await hub.subscribe(connection, since)
    connection.end_replay()
    await connection.overflowed.wait()


async def _receive(connection: Connection, hub: Hub) -> None:
    """Reads the client's frames: `updatesubscribersite` moves it; others are ignored."""
    websocket = connection.websocket
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if not text:
            continue
        try:
            site = _site_from(json.loads(text))
        except ValueError:
            continue
        if site is not None and site != connection.site:
            connection.cursor = 0
            connection.cursor = await hub.move(connection, site)
