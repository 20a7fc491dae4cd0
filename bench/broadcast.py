"""The websocket stack's own ceiling for the datastream: a bare broadcast server on the
same uvicorn as `obsrelay serve` (uvloop, httptools, the same websocket protocol with
its pre-encoded frame writer, api/wsframes.py), with no obsrelay logic: no store, no
bus, no access checks, no replay. bench/stream.py runs it beside obsrelay, in the same
run, and gives obsrelay's latency beside it.

    python -m bench.broadcast --port 8124

`POST /logs/newlog` takes the JSON body the site software posts and sends every
subscriber of its site a frame of the datastream's shape. The frames of the posts
handled in one turn of the event loop go out to each subscriber in one write. With
`--hold-ms N`, sends are paced as obsrelay paces a site's stream under load (the Hub,
services/stream.py): the first after a quiet spell at once, the next no sooner than
`HOLD_PER_FAN_OUT` times as long as the last send took after it, and never more than
N ms, with everything posted meanwhile in one write.
`GET /datastream?site=` (websocket) subscribes.
"""

import argparse
import asyncio
import json
import time
from typing import Any

from fastapi import FastAPI, Request, WebSocket

from bench.echo import run_as_obsrelay_runs
from obsrelay.api.wsframes import (
    FrameWriter,
    FrameWriterProtocol,
    encode_text_frame,
    frame_writer_for,
)
from obsrelay.services.stream import HOLD_PER_FAN_OUT

app = FastAPI()


class Broadcast:
    """Each site's subscribers, and the frames waiting for the next send to them."""

    def __init__(self) -> None:
        self.subscribers: dict[str, set[FrameWriter]] = {}
        self.hold_seconds = 0.0
        self._pending: dict[str, list[bytes]] = {}
        self._next_send_at = 0.0

    def post(self, site: str, frame: bytes) -> None:
        """Sends `frame` to `site`'s subscribers in this turn of the loop, or, within
        `hold_seconds` of the last send, with that long after it."""
        if not self._pending:
            loop = asyncio.get_running_loop()
            loop.call_at(max(loop.time(), self._next_send_at), self._send)
        self._pending.setdefault(site, []).append(frame)

    def _send(self) -> None:
        began = time.perf_counter()
        pending, self._pending = self._pending, {}
        for site, frames in pending.items():
            data = b"".join(frames)
            for writer in list(self.subscribers.get(site, ())):
                writer.write(frames, data)
        hold = min(self.hold_seconds, HOLD_PER_FAN_OUT * (time.perf_counter() - began))
        self._next_send_at = asyncio.get_running_loop().time() + hold


broadcast = Broadcast()


@app.post("/logs/newlog")
async def newlog(request: Request) -> dict[str, Any]:
    body = json.loads(await request.body())
    site = body["site"]
    payload = json.dumps(
        {"site": site, "topic": "userstatus", "data": body, "id": "0"}, separators=(",", ":")
    )
    broadcast.post(site, encode_text_frame(payload.encode()))
    return {"ok": True}


@app.websocket("/datastream")
async def datastream(websocket: WebSocket) -> None:
    site = websocket.query_params.get("site", "")
    await websocket.accept()
    writer = frame_writer_for(websocket)
    if not isinstance(writer, FrameWriter):
        raise RuntimeError("the broadcast ceiling needs uvicorn with FrameWriterProtocol")
    broadcast.subscribers.setdefault(site, set()).add(writer)
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        broadcast.subscribers[site].discard(writer)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--hold-ms",
        type=float,
        default=0.0,
        help="The longest hold between sends, as obsrelay's OBSRELAY_STREAM_BATCH_MS.",
    )
    args = parser.parse_args()
    broadcast.hold_seconds = args.hold_ms / 1000
    run_as_obsrelay_runs(app, args.port, ws=FrameWriterProtocol, ws_per_message_deflate=False)


if __name__ == "__main__":
    main()
