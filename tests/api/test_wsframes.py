"""The frame writer against the uvicorn that is installed: it reaches into uvicorn's
websocket protocol, so a uvicorn that changes that protocol must fail here, by name,
and not as a silent fallback or a closed socket somewhere else in the suite."""

import asyncio
from importlib.metadata import version
from typing import Any

import uvicorn
import websockets

from obsrelay.api.wsframes import EXTENSION, FrameWriter, FrameWriterProtocol, encode_text_frame
from tests.servers import free_port

UVICORN = version("uvicorn")
CHANGED = (
    f"uvicorn {UVICORN} changed the websocket protocol that obsrelay's frame writer "
    "(src/obsrelay/api/wsframes.py) relies on; keep uvicorn in the range pyproject.toml pins"
)


async def test_the_frame_writer_writes_through_uvicorns_protocol() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        writer = scope.get("extensions", {}).get(EXTENSION)
        seen["writer"] = writer
        if isinstance(writer, FrameWriter):
            seen["written"] = writer.write([encode_text_frame(b"one"), encode_text_frame(b"two")])
            seen["buffered"] = writer.buffered()
            await writer.wait_writable()
        while (await receive())["type"] != "websocket.disconnect":
            pass
        if isinstance(writer, FrameWriter):
            seen["after_close"] = writer.write([encode_text_frame(b"late")])

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws=FrameWriterProtocol, log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), CHANGED
            await asyncio.sleep(0.02)
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
            frames = [await asyncio.wait_for(ws.recv(), 5) for _ in range(2)]
        await asyncio.sleep(0.2)
    finally:
        server.should_exit = True
        await serving
    assert isinstance(seen.get("writer"), FrameWriter), CHANGED + ": no writer in the scope"
    assert seen["written"] is True and seen["buffered"] >= 0, CHANGED
    assert frames == ["one", "two"], CHANGED
    assert seen["after_close"] is False, CHANGED + ": a closed socket still takes writes"
