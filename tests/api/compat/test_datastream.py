"""The datastream websocket with real websocket clients against a real server."""

import asyncio
import json
import socket
import time
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.helpers import assert_wire_job, newjob_body, newlog_body, raw, run_unmeasured, ws_url
from tests.servers import ServerProcess


async def frame(ws: ClientConnection, wait: float = 5.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), wait)
    assert isinstance(message, str), "frames are text frames"
    value = json.loads(message)
    assert isinstance(value, dict)
    return value


async def frames(ws: ClientConnection, count: int, wait: float = 10.0) -> list[dict[str, Any]]:
    return [await frame(ws, wait) for _ in range(count)]


async def nothing_more(ws: ClientConnection, wait: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), wait)


async def connect(server: ServerProcess, query: str) -> ClientConnection:
    """Connects as the browser does: no auth, no subprotocol, and at once the site frame."""
    ws = await websockets.connect(ws_url(server.url, query))
    return ws


def subscribe_frame(site: str) -> str:
    return json.dumps({"action": "updatesubscribersite", "site": site})


def assert_userstatus(item: dict[str, Any], site: str, text: str, level: str) -> None:
    assert set(item) == {"site", "topic", "data", "id"}
    assert item["site"] == site and item["topic"] == "userstatus"
    assert set(item["data"]) == {"site", "message", "log_level", "timestamp"}
    assert item["data"]["message"] == text and item["data"]["log_level"] == level
    assert isinstance(item["data"]["timestamp"], float)


async def post_log(client: httpx.AsyncClient, site: str, text: str, **extra: Any) -> None:
    response = await client.post("/logs/newlog", content=newlog_body(site, text, **extra))
    assert response.status_code == 200, response.text


async def test_browser_sequence_and_frame_shapes(server: ServerProcess, site: str):
    async with httpx.AsyncClient(base_url=server.url) as client:
        first = await connect(server, f"site={site}")
        await first.send(subscribe_frame(site))  # as the browser does, right away
        second = await connect(server, f"site={site}")
        await second.send(subscribe_frame(site))
        await asyncio.sleep(0.2)
        await post_log(client, site, "Slewing to M31", level="WARN")
        job = (await client.post("/jobs/newjob", content=raw(newjob_body(site)))).json()
        await client.post(
            "/jobs/updatejobstatus",
            content=raw({"site": site, "ulid": job["ulid"], "newStatus": "STARTED"}),
        )
        await client.post(
            f"/api/v1/sites/{site}/events", json={"topic": "sitestatus", "data": {"roof": "open"}}
        )
        for ws in (first, second):
            message, created, started, status = await frames(ws, 4)
            assert_userstatus(message, site, "Slewing to M31", "warning")
            for change in (created, started):
                assert change["topic"] == "jobs" and change["site"] == site
                assert_wire_job(change["data"])
            assert created["data"]["statusId"] == f"UNREAD#{job['ulid']}"
            assert started["data"]["statusId"] == f"STARTED#{job['ulid']}"
            assert int(message["id"]) < int(created["id"]) < int(started["id"])
            assert status == {"site": site, "topic": "sitestatus", "data": {"roof": "open"}}
            await nothing_more(ws)  # nothing is sent back for updatesubscribersite
            await ws.close()


async def test_same_second_burst_of_five_all_streamed_in_order(server: ServerProcess, site: str):
    async with httpx.AsyncClient(base_url=server.url) as client:
        ws = await connect(server, f"site={site}")
        await ws.send(subscribe_frame(site))
        await asyncio.sleep(0.2)
        second = float(int(time.time()))
        for i in range(5):
            await post_log(client, site, f"burst {i}", timestamp=second)
        received = await frames(ws, 5)
        assert [f["data"]["message"] for f in received] == [f"burst {i}" for i in range(5)]
        assert all(f["data"]["timestamp"] == second for f in received)
        stored = (await client.get("/logs/recent-logs", params={"site": site})).json()
        assert [m["message"] for m in stored] == [f"burst {i}" for i in range(5)]
        await ws.close()


async def test_switching_site_and_ignoring_unknown_frames(server: ServerProcess, site: str):
    other = site + "-b"
    async with httpx.AsyncClient(base_url=server.url) as client:
        ws = await connect(server, f"site={site}")
        await ws.send("not json at all")
        await ws.send(json.dumps({"action": "something else"}))
        await ws.send(json.dumps({"action": "updatesubscribersite", "site": "bad site!"}))
        await ws.send(subscribe_frame(other))
        await asyncio.sleep(0.3)
        await post_log(client, site, "for the old site")
        await post_log(client, other, "for the new site")
        received = await frame(ws)
        assert received["site"] == other and received["data"]["message"] == "for the new site"
        await nothing_more(ws)
        await ws.close()


async def test_no_site_is_refused(server: ServerProcess):
    for query in ("", "site=", "site=bad%20site", "site=ok&since=-3", "site=ok&since=x"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(ws_url(server.url, query))
        assert refused.value.response.status_code == 403


async def test_reconnect_without_since_continues_live(server: ServerProcess, site: str):
    async with httpx.AsyncClient(base_url=server.url) as client:
        ws = await connect(server, f"site={site}")
        await asyncio.sleep(0.2)
        await post_log(client, site, "before")
        await frame(ws)
        await ws.close()
        # The browser reconnects to the URL it first used and sends nothing.
        ws = await connect(server, f"site={site}")
        await asyncio.sleep(0.2)
        await post_log(client, site, "after")
        assert (await frame(ws))["data"]["message"] == "after"
        await ws.close()


async def _make_changes(client: httpx.AsyncClient, site: str, count: int, tag: str) -> list[str]:
    """Makes `count` stream events (messages and job changes); returns what to expect."""
    expected: list[str] = []
    while len(expected) < count:
        if len(expected) % 5 == 4:
            job = (await client.post("/jobs/newjob", content=raw(newjob_body(site)))).json()
            expected.append(f"job:{job['ulid']}:UNREAD")
        else:
            text = f"{tag} {len(expected)}"
            await post_log(client, site, text)
            expected.append(f"msg:{text}")
    return expected


def _describe(item: dict[str, Any]) -> str:
    if item["topic"] == "jobs":
        return f"job:{item['data']['ulid']}:{item['data']['statusId'].split('#')[0]}"
    return f"msg:{item['data']['message']}"


async def test_resume_with_since_replays_exactly_what_was_missed(server: ServerProcess, site):
    async with httpx.AsyncClient(base_url=server.url) as client:
        ws = await connect(server, f"site={site}")
        await asyncio.sleep(0.2)
        await post_log(client, site, "seen")
        last_id = (await frame(ws))["id"]
        await ws.close()

        missed = await _make_changes(client, site, 50, "missed")
        ws = await connect(server, f"site={site}&since={last_id}")
        replayed = await frames(ws, 50)
        assert [_describe(item) for item in replayed] == missed
        ids = [int(item["id"]) for item in replayed]
        assert ids == list(range(int(last_id) + 1, int(last_id) + 51))
        await nothing_more(ws)
        await post_log(client, site, "live again")
        live = await frame(ws)
        assert live["data"]["message"] == "live again" and int(live["id"]) == ids[-1] + 1
        await ws.close()


async def test_resume_while_events_keep_arriving(server: ServerProcess, site: str):
    async with httpx.AsyncClient(base_url=server.url) as client:
        ws = await connect(server, f"site={site}")
        await asyncio.sleep(0.2)
        await post_log(client, site, "seen")
        last_id = int((await frame(ws))["id"])
        await ws.close()

        missed = await _make_changes(client, site, 50, "missed")
        during = asyncio.create_task(_make_changes(client, site, 40, "during"))
        ws = await connect(server, f"site={site}&since={last_id}")
        received = await frames(ws, 90, wait=15)
        expected = missed + await during
        assert [_describe(item) for item in received] == expected
        assert [int(item["id"]) for item in received] == list(range(last_id + 1, last_id + 91))
        await nothing_more(ws)
        await ws.close()


def test_a_client_that_never_reads_is_closed_and_delays_no_one(
    tmp_path, sqlite_url: str, site: str
):
    """The server is measured; the clients, which move 9 MB, run out of coverage's reach
    (see `run_unmeasured`). On SQLite alone: what is tested, the socket writes and the
    slow-client policy, comes after the store, and the other tests of this module run the
    stream on both backends."""
    from tests.servers import start_server

    server = start_server(sqlite_url, tmp_path, OBSRELAY_STREAM_BUFFER_BYTES="200000")

    async def clients() -> None:
        # A raw client that completes the handshake, then never reads a byte.
        port = int(server.url.rsplit(":", 1)[1])
        slow = socket.socket()
        # A small window (set before connecting) so the kernel holds little for it.
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        slow.connect(("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=slow)
        writer.write(
            (
                f"GET /datastream?site={site} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        normal = await connect(server, f"site={site}")
        await asyncio.sleep(0.3)
        # Enough to fill the kernel's socket buffers for the slow client, then its queue.
        payload = "x" * 15000
        count, posters = 600, 4
        close_1013 = b"\x88\x02\x03\xf5"

        async def post_share(client: httpx.AsyncClient, first: int) -> None:
            for i in range(first, count, posters):
                await post_log(client, site, f"{i} {payload}")

        async def read_once_cut_off() -> bytes:
            # The server gives a client it cut off some seconds to read up to the close
            # frame: start reading when it says it cut this one off, however long the
            # posting takes on a loaded machine.
            while "that fell behind" not in server.log():  # noqa: ASYNC110 (a file)
                await asyncio.sleep(0.05)
            data = b""
            while close_1013 not in data:
                chunk = await asyncio.wait_for(reader.read(65536), 15)
                if not chunk:
                    break
                data += chunk
            return data

        slow_end = asyncio.create_task(read_once_cut_off())
        async with httpx.AsyncClient(base_url=server.url) as client:
            posting = asyncio.gather(*(post_share(client, first) for first in range(posters)))
            received = await frames(normal, count, wait=30)
            await posting
        assert sorted(int(f["data"]["message"].split()[0]) for f in received) == list(range(count))
        # The slow client was closed with 1013 ("try again later"): find its close frame.
        data = await asyncio.wait_for(slow_end, 30)
        assert close_1013 in data, "no close frame with code 1013"
        assert data.count(b'"topic":"userstatus"') < count, "the slow client was not cut off"
        writer.close()
        await normal.close()

    try:
        run_unmeasured(lambda: asyncio.run(clients()))
    finally:
        server.stop()


async def test_under_another_asgi_server_and_another_path(sqlite_url: str, tmp_path, site):
    """Plain uvicorn (no frame writer extension) and OBSRELAY_DATASTREAM_PATH=/dev. On
    SQLite alone: the server and the path are what is tested, not the store."""
    from tests.servers import start_server

    command = [
        "-m",
        "uvicorn",
        "--factory",
        "obsrelay.app:app_from_environment",
        "--port",
        "{port}",
        "--ws",
        "websockets-sansio",
    ]
    server = start_server(sqlite_url, tmp_path, command, OBSRELAY_DATASTREAM_PATH="/dev")
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            ws = await websockets.connect(ws_url(server.url, f"site={site}", path="/dev"))
            await asyncio.sleep(0.2)
            for i in range(3):
                await post_log(client, site, f"plain {i}")
            received = await frames(ws, 3)
            assert [f["data"]["message"] for f in received] == [f"plain {i}" for i in range(3)]
            await ws.close()
            await post_log(client, site, "while away")
            ws = await websockets.connect(
                ws_url(server.url, f"site={site}&since={received[-1]['id']}", path="/dev")
            )
            assert (await frame(ws))["data"]["message"] == "while away"
            await ws.close()
            with pytest.raises(websockets.InvalidStatus):
                await websockets.connect(ws_url(server.url, f"site={site}"))  # not /datastream
    finally:
        server.stop()


def _legacy_job_text(job: dict[str, Any], status: str, seconds: int, alternate: str) -> str:
    """A job's legacy frame data, spelt out key by key: the order, the spacing and the
    escaping are what the real front end and the hosted service's clients have seen."""
    ulid, site = job["ulid"], job["site"]
    return (
        f'{{"site":"{site}","ulid":"{ulid}","statusId":"{status}#{ulid}",'
        f'"timestamp_ms":{job["timestamp_ms"]},"deviceType":"camera",'
        f'"deviceInstance":"camera1","action":"expose",'
        f'"required_params":{{"time":30,"filter":"H\\u03b1","tiny":1e-300}},'
        f'"optional_params":{{"note":"caf\\u00e9 \\"quoted\\""}},'
        f'"user_name":"Ada Observer","user_id":"google-oauth2|1234","user_roles":["admin"],'
        f'"secondsUntilComplete":{seconds},"alternateStatusId":"{alternate}#{ulid}",'
        f'"alternateSecondsUntilComplete":-1}}'
    )


async def test_legacy_frames_are_pinned_byte_for_byte_for_every_event_kind(
    server: ServerProcess, site: str
):
    params = {
        "required_params": {"time": 30, "filter": "H\u03b1", "tiny": 1e-300},
        "optional_params": {"note": 'café "quoted"'},
    }
    async with httpx.AsyncClient(base_url=server.url) as client:
        ws = await connect(server, f"site={site}")
        await ws.send(subscribe_frame(site))
        await asyncio.sleep(0.2)
        await post_log(client, site, "Température 5 °C", level="WARN", timestamp=1700000000.25)
        first = (await client.post("/jobs/newjob", content=raw(newjob_body(site, **params)))).json()
        await client.post(
            "/jobs/updatejobstatus",
            content=raw(
                {
                    "site": site,
                    "ulid": first["ulid"],
                    "newStatus": "exposing",
                    "secondsUntilComplete": 42,
                }
            ),
        )
        cancel = newjob_body(site, action="cancel_all_commands", **params)
        everything = (await client.post("/jobs/newjob", content=raw(cancel))).json()
        await client.post(
            f"/api/v1/sites/{site}/events",
            json={"topic": "sitestatus", "data": {"roof": "öffen", "temps": [1.5, -2]}},
        )
        texts = [await asyncio.wait_for(ws.recv(), 5) for _ in range(6)]
        await ws.close()
    head = int(json.loads(texts[0])["id"])
    cancel_all = _legacy_job_text(everything, "UNREAD", -1, "UNREAD").replace(
        '"action":"expose"', '"action":"cancel_all_commands"'
    )
    expected = [
        f'{{"site":"{site}","topic":"userstatus","data":{{"site":"{site}",'
        f'"message":"Temp\\u00e9rature 5 \\u00b0C","log_level":"warning",'
        f'"timestamp":1700000000.25}},"id":"{head}"}}',
        f'{{"site":"{site}","topic":"jobs","data":'
        f'{_legacy_job_text(first, "UNREAD", -1, "UNREAD")},"id":"{head + 1}"}}',
        f'{{"site":"{site}","topic":"jobs","data":'
        f'{_legacy_job_text(first, "EXPOSING", 42, "UNREAD")},"id":"{head + 2}"}}',
        # cancel_all_commands: the job it cancelled, then itself, in one transaction.
        f'{{"site":"{site}","topic":"jobs","data":'
        f'{_legacy_job_text(first, "CANCELLED", -1, "CANCELLED")},"id":"{head + 3}"}}',
        f'{{"site":"{site}","topic":"jobs","data":{cancel_all},"id":"{head + 4}"}}',
        f'{{"site":"{site}","topic":"sitestatus",'
        f'"data":{{"roof":"\\u00f6ffen","temps":[1.5,-2]}}}}',
    ]
    assert texts == expected
