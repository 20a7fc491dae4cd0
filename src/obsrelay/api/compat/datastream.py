"""The datastream websocket: pushes a site's jobs and messages to browsers as they happen.

The browser connects to `/datastream?site=mrc1` (the path is configurable), sends
`{"action": "updatesubscribersite", "site": ...}` to switch site, and receives text
frames `{"site", "topic", "data", "id"}`. `id` is the event's number in the site's
stream; a client that reconnects with `?since=<id>` is first replayed every stored
event after it. Live-only topics (posted to /api/v1/sites/{site}/events) carry no id.

A client that falls too far behind (OBSRELAY_STREAM_BUFFER_BYTES waiting for it to
read) is closed with code 1013 and may resume with `since`, as is every client while
the database does not answer. A client frame over 64 KiB closes the socket with 1009
(the browser's one frame is a few dozen bytes). Ping/pong is uvicorn's.
"""

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketState

from obsrelay.api.permissions import credentials as credentials_of
from obsrelay.api.wsframes import AsgiFrameWriter, FrameWriter, encode_text_frame, frame_writer_for
from obsrelay.auth.access import Access, Action, Credentials
from obsrelay.domain.errors import InvalidInput, ObsrelayError
from obsrelay.domain.jobs import validate_site
from obsrelay.domain.values import INT_MAX
from obsrelay.services.stream import Hub, StreamEvent
from obsrelay.store.database import DatabaseUnavailable

log = logging.getLogger("obsrelay.datastream")

CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013
MAX_CLIENT_FRAME_BYTES = 64 * 1024
# A client that fell behind has a whole send buffer to read before the close frame.
_CLOSE_TIMEOUT = 10.0


def render_frame(event: StreamEvent) -> bytes:
    """The event as a websocket frame, encoded once and written to every subscriber."""
    # The data is JSON text already: put around it, not decoded and encoded again.
    head = f'{{"site":{json.dumps(event.site)},"topic":{json.dumps(event.topic)},"data":'
    tail = "}" if event.seq is None else f',"id":"{event.seq}"}}'
    return encode_text_frame((head + event.data_json + tail).encode())


class Connection:
    """One websocket subscriber: its site, its position in that site's stream, its writer.

    Frames are written as they come; when more than `max_buffer` bytes wait for the
    client to read them, it has fallen too far behind and is closed.
    """

    def __init__(
        self,
        websocket: WebSocket,
        site: str,
        writer: FrameWriter | AsgiFrameWriter,
        max_buffer: int,
    ) -> None:
        self.websocket = websocket
        self.site = site
        self.cursor = 0
        self.replaying = False
        self.ended = asyncio.Event()
        self.close_code = 1000
        self._writer = writer
        self._max_buffer = max_buffer
        self._held: list[tuple[StreamEvent, bytes]] = []
        self._held_bytes = 0

    def offer(self, batch: list[tuple[StreamEvent, bytes]]) -> None:
        if self.replaying:
            self._held += batch
            self._held_bytes += sum(len(frame) for _, frame in batch)
            if self._held_bytes > self._max_buffer:
                self._overflow()
            return
        self._put(batch)

    async def replay(self, event: StreamEvent, frame: bytes) -> None:
        if event.seq is not None and event.seq <= self.cursor:
            return
        self.cursor = event.seq or self.cursor
        self._writer.write([frame])
        # Replaying can be long: let the client read instead of buffering all of it.
        mark = self._max_buffer // 2
        while self._writer.buffered() > mark and not self.ended.is_set():
            await self._writer.wait_writable()
            if self._writer.buffered() > mark:
                await asyncio.sleep(0.005)

    def end_replay(self) -> None:
        self.replaying = False
        held, self._held, self._held_bytes = self._held, [], 0
        self._put(held)

    def _put(self, batch: list[tuple[StreamEvent, bytes]]) -> None:
        if self.ended.is_set():
            return
        frames = []
        for event, frame in batch:
            if event.site != self.site:
                continue
            if event.seq is not None:
                if event.seq <= self.cursor:
                    continue  # already given (by the replay)
                self.cursor = event.seq
            frames.append(frame)
        if not frames:
            return
        if self._writer.buffered() > self._max_buffer:
            self._overflow()
            return
        # One write for all the frames of a batch: under load, batches grow and the
        # cost per frame falls.
        self._writer.write(frames)

    def _overflow(self) -> None:
        if not self.ended.is_set():
            log.info("datastream: closing a client of %s that fell behind", self.site)
            self.end(CLOSE_TRY_AGAIN_LATER)

    def end(self, code: int) -> None:
        """Ends the connection with close `code` (the first reason given wins)."""
        if not self.ended.is_set():
            self.close_code = code
            self.ended.set()


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
    max_buffer: int = websocket.app.state.settings.stream_buffer_bytes
    try:
        site = validate_site(websocket.query_params.get("site"))
        since_text = websocket.query_params.get("since")
        since = int(since_text) if since_text else None
        if since is not None and not 0 <= since <= INT_MAX:
            raise ValueError
    except (InvalidInput, ValueError):
        # Refused before the handshake completes: the client sees HTTP 403.
        await websocket.close(CLOSE_POLICY)
        return
    access: Access = websocket.app.state.access
    credentials = credentials_of(websocket)
    try:
        await access.ensure(Action.READ, site, credentials)
    except (ObsrelayError, DatabaseUnavailable):
        await websocket.close(CLOSE_POLICY)
        return
    sockets: dict[str, int] = websocket.app.state.sockets_per_client
    client = credentials.address
    if sockets.get(client, 0) >= websocket.app.state.settings.max_sockets_per_client:
        log.warning("datastream: refused a connection from %s (too many open)", client)
        await websocket.close(CLOSE_POLICY)
        return
    sockets[client] = sockets.get(client, 0) + 1
    try:
        await _serve(websocket, hub, site, since, max_buffer, access, credentials)
    finally:
        sockets[client] -= 1
        if not sockets[client]:
            del sockets[client]


async def _serve(
    websocket: WebSocket,
    hub: Hub,
    site: str,
    since: int | None,
    max_buffer: int,
    access: Access,
    credentials: Credentials,
) -> None:
    await websocket.accept()
    writer = frame_writer_for(websocket)
    connection = Connection(websocket, site, writer, max_buffer)
    connection.replaying = since is not None
    connection.cursor = since or 0
    tasks = [
        asyncio.create_task(_receive(connection, hub, access, credentials)),
        asyncio.create_task(_follow(connection, hub, since)),
    ]
    try:
        # Whichever ends first ends the connection: the client left, or it fell too
        # far behind.
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unsubscribe(connection)
        writer.close()
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        if websocket.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(connection.close_code), _CLOSE_TIMEOUT)


async def _follow(connection: Connection, hub: Hub, since: int | None) -> None:
    """Subscribes (replaying after `since`), then waits until the client falls behind."""
    try:
        connection.cursor = await hub.subscribe(connection, since)
    except DatabaseUnavailable:
        connection.end(CLOSE_TRY_AGAIN_LATER)  # the client resumes with `since` later
        return
    connection.end_replay()
    await connection.ended.wait()


async def _receive(
    connection: Connection, hub: Hub, access: Access, credentials: Credentials
) -> None:
    """Reads the client's frames: `updatesubscribersite` moves it; others are ignored."""
    websocket = connection.websocket
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text") or ""
        if len(text) + len(message.get("bytes") or b"") > MAX_CLIENT_FRAME_BYTES:
            connection.end(CLOSE_TOO_BIG)
            return
        if not text:
            continue
        try:
            site = _site_from(json.loads(text))
        except ValueError:
            continue
        if site is not None and site != connection.site:
            try:
                await access.ensure(Action.READ, site, credentials)
            except (ObsrelayError, DatabaseUnavailable):
                continue  # not allowed to read that site (or not now): stay where it is
            connection.cursor = 0
            try:
                connection.cursor = await hub.move(connection, site)
            except DatabaseUnavailable:
                connection.end(CLOSE_TRY_AGAIN_LATER)
                return
