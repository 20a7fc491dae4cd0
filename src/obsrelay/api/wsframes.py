"""Writing pre-encoded websocket frames straight to a connection's socket.

The datastream sends the same frame to every subscriber of a site. Through ASGI, each
send is encoded again and costs a coroutine, a task switch and a write: at 1,000
subscribers that is most of a CPU core at 100 messages a second. A server frame is
not masked, so its bytes are the same for every connection: they are encoded once
(`encode_text_frame`) and written with one call per connection.

`FrameWriterProtocol` is uvicorn's websocket protocol with one addition: it puts a
`FrameWriter` for the connection into the ASGI scope's extensions. `obsrelay serve`
runs uvicorn with it. Under any other server the extension is absent and the
datastream falls back to plain ASGI sends (`AsgiFrameWriter`).
"""

import asyncio
from typing import Any, Protocol

from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

EXTENSION = "obsrelay.frame_writer"


def encode_text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked text frame (RFC 6455, section 5.2)."""
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 65536:
        header = bytes((0x81, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + length.to_bytes(8, "big")
    return header + payload


class StreamWriter(Protocol):
    """What a stream connection writes its frames with (FrameWriter or AsgiFrameWriter)."""

    def write(self, frames: list[bytes], joined: bytes | None = None) -> bool: ...

    def buffered(self) -> int: ...

    async def wait_writable(self) -> None: ...

    def close(self) -> None: ...


class FrameWriter:
    """Writes whole frames to one websocket connection's transport."""

    def __init__(self, protocol: WebSocketsSansIOProtocol) -> None:
        self._protocol = protocol

    def write(self, frames: list[bytes], joined: bytes | None = None) -> bool:
        """Writes whole frames in one write, without waiting; False once closing.

        `joined`: the same frames already in one piece, when the caller has them so.
        """
        protocol = self._protocol
        if protocol.close_sent or protocol.disconnected or protocol.transport.is_closing():
            return False
        protocol.transport.write(joined if joined is not None else b"".join(frames))
        return True

    def buffered(self) -> int:
        """Bytes written but not yet taken by the socket."""
        return self._protocol.transport.get_write_buffer_size()

    async def wait_writable(self) -> None:
        """Waits until the transport takes writes again (its buffer went below the mark)."""
        await self._protocol.writable.wait()

    def close(self) -> None:
        pass


class FrameWriterProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, offering the app a FrameWriter (see module docstring)."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope.setdefault("extensions", {})[EXTENSION] = FrameWriter(self)


class AsgiFrameWriter:
    """The same interface over plain ASGI sends, for servers without the extension."""

    def __init__(self, websocket: WebSocket, limit_frames: int = 1000) -> None:
        self._websocket = websocket
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._sizes = 0
        self._limit_frames = limit_frames
        self._closed = False
        self._room = asyncio.Event()
        self._room.set()
        self._sender = asyncio.get_running_loop().create_task(self._send_forever())

    def write(self, frames: list[bytes], joined: bytes | None = None) -> bool:
        if self._closed or self._sender.done():
            return False
        for frame in frames:
            self._queue.put_nowait(frame)
            self._sizes += len(frame)
        if self._queue.qsize() > self._limit_frames:
            self._room.clear()
        return True

    def buffered(self) -> int:
        return self._sizes

    async def wait_writable(self) -> None:
        await self._room.wait()

    async def _send_forever(self) -> None:
        try:
            while True:
                frame = await self._queue.get()
                self._sizes -= len(frame)
                if self._queue.qsize() <= self._limit_frames:
                    self._room.set()
                await self._websocket.send_text(_payload(frame).decode())
        finally:
            self._room.set()  # nobody waits for a writer that has stopped

    def close(self) -> None:
        self._closed = True
        self._sender.cancel()


def _payload(frame: bytes) -> bytes:
    marker = frame[1] & 0x7F
    start = 2 if marker < 126 else 4 if marker == 126 else 10
    return frame[start:]


def frame_writer_for(websocket: WebSocket) -> StreamWriter:
    writer = websocket.scope.get("extensions", {}).get(EXTENSION)
    return writer if isinstance(writer, FrameWriter) else AsgiFrameWriter(websocket)
