"""The native stream: a site's events as they happen, in obsrelay's own shapes.

`ws(s)://host/api/v1/sites/{site}/stream?since=<id>` sends text frames
`{"site", "topic", "data", "id"}`:
- topic "job": `data` is the job as `GET /api/v1/jobs/{ulid}` gives it (without its
  history), with each queue's status and the time it last changed;
- topic "message": `data` is the message as `GET /api/v1/sites/{site}/messages` gives
  it, with its `ulid`;
- topic "presence": the site's software went online or offline, `data` is
  `{"online", "since_ms"}` (live, with no `id`; `GET /api/v1/sites/{site}` has the rest);
- any other topic: a live event posted to `/api/v1/sites/{site}/events`, as posted,
  with no `id`.

`id` is the event's number in the site's stream. `since` replays every stored event
after it first (take it from `GET /api/v1/sites/{site}/stream` before reading the
lists, and nothing falls between). A client that reads by token passes it as
`?token=`, since a browser cannot set headers on a websocket. The client has nothing
to say on this socket; one stream follows one site. Serving, replay and the
slow-client policy are api/streaming.py's.
"""

import json

from fastapi import APIRouter, WebSocket

from obsrelay.api.streaming import CLOSE_POLICY, parse_since, serve
from obsrelay.api.wsframes import encode_text_frame
from obsrelay.domain.errors import InvalidInput
from obsrelay.domain.jobs import validate_site
from obsrelay.services.stream import StreamEvent

router = APIRouter(prefix="/api/v1/sites")


def render_native_frame(event: StreamEvent) -> bytes:
    """The event as a native stream frame; its data is stored as JSON text already."""
    head = f'{{"site":{json.dumps(event.site)},"topic":{json.dumps(event.topic)},"data":'
    tail = "}" if event.seq is None else f',"id":{event.seq}}}'
    return encode_text_frame((head + event.data_json + tail).encode())


@router.websocket("/{site}/stream")
async def native_stream(websocket: WebSocket, site: str) -> None:
    try:
        site = validate_site(site)
        since = parse_since(websocket.query_params.get("since"))
    except (InvalidInput, ValueError):
        await websocket.close(CLOSE_POLICY)  # the client sees HTTP 403
        return
    await serve(websocket, site, since, render_native_frame, "native")
