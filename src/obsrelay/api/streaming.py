"""Serving a site's stream over a websocket, for both the compatible datastream and the
native stream: the checks before the handshake, the per-client socket budget, the
replay after `since`, and the slow-client policy. What a frame looks like, and what a
client may say, is each caller's (api/compat/datastream.py, api/v1/stream.py).

A client that falls too far behind (OBSRELAY_STREAM_BUFFER_BYTES waiting for it to
read) is closed with code 1013 and may resume with `since`, as is every client while
the database does not answer. A client frame over 64 KiB closes the socket with 1009.
Ping/pong is uvicorn's.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import WebSocket
from prometheus_client.metrics import Counter as CounterChild
from starlette.websockets import WebSocketState

from obsrelay.api.deps import services_of
from obsrelay.api.permissions import credentials as credentials_of
from obsrelay.api.wsframes import StreamWriter, frame_writer_for
from obsrelay.auth.access import Action
from obsrelay.domain.errors import ObsrelayError
from obsrelay.domain.values import INT_MAX
from obsrelay.metrics import Metrics
from obsrelay.services.stream import Hub, Render, Rendered, StreamEvent
from obsrelay.store.database import DatabaseUnavailable

log = logging.getLogger("obsrelay.datastream")

CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013
MAX_CLIENT_FRAME_BYTES = 64 * 1024
# A client that fell behind has a whole send buffer to read before the close frame.
_CLOSE_TIMEOUT = 10.0


class Connection:
    """One websocket subscriber: its site, its position in that site's stream, its
    renderer and its writer.

    Frames are written as they come; when more than `max_buffer` bytes wait for the
    client to read them, it has fallen too far behind and is closed.
    """

    def __init__(
        self,
        websocket: WebSocket,
        site: str,
        render: Render,
        writer: StreamWriter,
        max_buffer: int,
        counters: "StreamCounters",
    ) -> None:
        self.websocket = websocket
        self.site = site
        self.render = render
        self.cursor = 0
        self.replaying = False
        self.ended = asyncio.Event()
        self.close_code = 1000
        self._writer = writer
        self._max_buffer = max_buffer
        self._held: list[Rendered] = []
        self._held_bytes = 0
        self._counters = counters

    def offer(self, batch: Rendered) -> None:
        if self.replaying:
            self._held.append(batch)
            self._held_bytes += len(batch.joined)
            if self._held_bytes > self._max_buffer:
                self._overflow()
            return
        self._put(batch)

    async def replay(self, event: StreamEvent, frame: bytes) -> None:
        if event.seq is not None and event.seq <= self.cursor:
            return
        self.cursor = event.seq or self.cursor
        self._writer.write([frame])
        self._counters.frames_sent.inc()
        # Replaying can be long: let the client read instead of buffering all of it.
        mark = self._max_buffer // 2
        while self._writer.buffered() > mark and not self.ended.is_set():
            await self._writer.wait_writable()
            if self._writer.buffered() > mark:
                await asyncio.sleep(0.005)

    def end_replay(self) -> None:
        self.replaying = False
        held, self._held, self._held_bytes = self._held, [], 0
        for batch in held:
            self._put(batch)

    def _put(self, batch: Rendered) -> None:
        if self.ended.is_set():
            return
        if batch.news_to(self.site, self.cursor):
            # The usual case, and the cheap one: all of it, joined once for all.
            frames, joined = batch.frames, batch.joined
            self.cursor = batch.last_seq or self.cursor
        else:
            frames, joined = self._unseen(batch), None
        if not frames:
            return
        if self._writer.buffered() > self._max_buffer:
            self._overflow()
            return
        # One write for all the frames of a batch: under load, batches grow and the
        # cost per frame falls.
        self._writer.write(frames, joined)
        self._counters.frames_sent.inc(len(frames))

    def _unseen(self, batch: Rendered) -> list[bytes]:
        """The frames of `batch` this connection was not given yet (after a replay or a
        move), advancing its cursor."""
        frames = []
        for event, frame in batch.items:
            if event.site != self.site or not frame:
                continue  # another site's, or not for this stream (see Render)
            if event.seq is not None:
                if event.seq <= self.cursor:
                    continue  # already given (by the replay)
                self.cursor = event.seq
            frames.append(frame)
        return frames

    def _overflow(self) -> None:
        if not self.ended.is_set():
            log.info("datastream: closing a client of %s that fell behind", self.site)
            self._counters.slow_clients_closed.inc()
            self.end(CLOSE_TRY_AGAIN_LATER)

    def end(self, code: int) -> None:
        """Ends the connection with close `code` (the first reason given wins)."""
        if not self.ended.is_set():
            self.close_code = code
            self.ended.set()


@dataclass(frozen=True)
class StreamCounters:
    """One kind of stream's counters (metrics.py), bound once per connection."""

    frames_sent: CounterChild
    slow_clients_closed: CounterChild

    @classmethod
    def of(cls, metrics: Metrics, stream: str) -> "StreamCounters":
        return cls(metrics.frames_sent.labels(stream), metrics.slow_clients_closed.labels(stream))


# What a stream does with a client's text frame: (connection, text) -> awaitable.
OnText = Callable[[Connection, str], Awaitable[None]]


async def ignore_text(connection: Connection, text: str) -> None:
    """For streams whose clients have nothing to say."""


def parse_since(text: str | None) -> int | None:
    """`?since=` as an event number; ValueError when it is not one."""
    if not text:
        return None
    since = int(text)
    if not 0 <= since <= INT_MAX:
        raise ValueError(f"since={text} is out of range")
    return since


async def serve(
    websocket: WebSocket,
    site: str,
    since: int | None,
    render: Render,
    stream: str,
    on_text: OnText = ignore_text,
) -> None:
    """Checks the client may read `site` and has a socket to spare, then streams the site
    to it (replaying after `since`) until either side ends. A refusal before the
    handshake reaches the client as HTTP 403. `stream` names the kind in the metrics."""
    running = services_of(websocket)
    credentials = credentials_of(websocket)
    try:
        await running.access.ensure(Action.READ, site, credentials)
    except (ObsrelayError, DatabaseUnavailable):
        await websocket.close(CLOSE_POLICY)
        return
    sockets = running.sockets_per_client
    client = credentials.address
    if sockets.get(client, 0) >= running.settings.max_sockets_per_client:
        log.warning("datastream: refused a connection from %s (too many open)", client)
        await websocket.close(CLOSE_POLICY)
        return
    sockets[client] = sockets.get(client, 0) + 1
    try:
        max_buffer = running.settings.stream_buffer_bytes
        counters = StreamCounters.of(running.metrics, stream)
        await _stream(websocket, running.hub, site, since, render, on_text, max_buffer, counters)
    finally:
        sockets[client] -= 1
        if not sockets[client]:
            del sockets[client]


async def _stream(
    websocket: WebSocket,
    hub: Hub,
    site: str,
    since: int | None,
    render: Render,
    on_text: OnText,
    max_buffer: int,
    counters: StreamCounters,
) -> None:
    await websocket.accept()
    writer = frame_writer_for(websocket)
    connection = Connection(websocket, site, render, writer, max_buffer, counters)
    connection.replaying = since is not None
    connection.cursor = since or 0
    tasks = [
        asyncio.create_task(_receive(connection, on_text)),
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


async def _receive(connection: Connection, on_text: OnText) -> None:
    """Reads the client's frames and hands each text to `on_text`; too big ends it."""
    websocket = connection.websocket
    while not connection.ended.is_set():
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text") or ""
        if len(text) + len(message.get("bytes") or b"") > MAX_CLIENT_FRAME_BYTES:
            connection.end(CLOSE_TOO_BIG)
            return
        if text:
            await on_text(connection, text)
