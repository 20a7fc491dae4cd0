"""The native stream (/api/v1/sites/{site}/stream) with real websocket clients against a
real server: obsrelay's own shapes, numbered, resumable."""

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.helpers import ws_url
from tests.servers import ServerProcess


def stream_url(server: ServerProcess, site: str, query: str = "") -> str:
    return ws_url(server.url, query, path=f"/api/v1/sites/{site}/stream")


async def _next(ws: ClientConnection, wait: float) -> dict[str, Any]:
    """The next frame but a presence one: a site that calls comes online meanwhile, and
    tests/system/test_presence.py tests those."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait))
        if frame["topic"] != "presence":
            return frame


async def frames(ws: ClientConnection, count: int, wait: float = 10.0) -> list[dict[str, Any]]:
    return [await _next(ws, wait) for _ in range(count)]


async def nothing_more(ws: ClientConnection, wait: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await _next(ws, wait)


async def test_frames_carry_the_apis_own_shapes_and_numbers(server: ServerProcess, site: str):
    async with httpx.AsyncClient(base_url=server.url) as client:
        api = f"/api/v1/sites/{site}"
        head = (await client.get(f"{api}/stream")).json()["head"]
        ws = await websockets.connect(stream_url(server, site, f"since={head}"))
        posted = (await client.post(f"{api}/messages", json={"message": "Dome open"})).json()
        job = (
            await client.post(
                f"{api}/jobs", json={"device": "camera", "instance": "c1", "action": "expose"}
            )
        ).json()
        claimed = (await client.post(f"{api}/jobs/claim", json={})).json()
        await client.post(f"{api}/events", json={"topic": "roof", "data": {"open": True}})
        message, created, received, live = await frames(ws, 4)
        assert message == {"site": site, "topic": "message", "data": posted, "id": head + 1}
        assert created == {"site": site, "topic": "job", "data": job, "id": head + 2}
        assert received == {"site": site, "topic": "job", "data": claimed[0], "id": head + 3}
        stored = (await client.get(f"/api/v1/jobs/{job['ulid']}")).json()
        del stored["history"]
        # The job as it is now, with the time each queue last changed (not the time it
        # was seen).
        assert received["data"] == stored
        assert stored["primary"]["status"] == "RECEIVED"
        assert stored["primary"]["updated_ms"] >= stored["alternate"]["updated_ms"]
        assert live == {"site": site, "topic": "roof", "data": {"open": True}}
        await ws.send(json.dumps({"action": "updatesubscribersite", "site": site + "-b"}))
        await client.post(f"{api}/messages", json={"message": "still here"})
        (again,) = await frames(ws, 1)
        assert again["data"]["message"] == "still here"  # one stream follows one site
        metrics = (await client.get("/metrics")).text
        assert "obsrelay_stream_sockets 1.0" in metrics
        sent = re.search(r'obsrelay_stream_frames_sent_total\{stream="native"\} (\S+)', metrics)
        assert sent and float(sent.group(1)) >= 5
        await ws.close()


async def test_resume_with_since_replays_what_was_missed_then_goes_live(
    server: ServerProcess, site: str
):
    async with httpx.AsyncClient(base_url=server.url) as client:
        api = f"/api/v1/sites/{site}"
        head = (await client.get(f"{api}/stream")).json()["head"]
        for i in range(30):
            await client.post(f"{api}/messages", json={"message": f"missed {i}"})
        ws = await websockets.connect(stream_url(server, site, f"since={head + 10}"))
        replayed = await frames(ws, 20)
        assert [f["id"] for f in replayed] == list(range(head + 11, head + 31))
        assert [f["data"]["message"] for f in replayed] == [f"missed {i}" for i in range(10, 30)]
        await nothing_more(ws)
        await client.post(f"{api}/messages", json={"message": "live"})
        (live,) = await frames(ws, 1)
        assert (live["id"], live["data"]["message"]) == (head + 31, "live")
        await ws.close()


async def test_a_bad_site_or_since_is_refused(server: ServerProcess):
    for site, query in (
        ("bad%20site", ""),
        ("ok", "since=-1"),
        ("ok", "since=x"),
        ("ok", f"since={2**63}"),
    ):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(stream_url(server, site, query))
        assert refused.value.response.status_code == 403
