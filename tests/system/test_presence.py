"""Site presence across two server processes on PostgreSQL and Redis: both agree whether
a site is alive, each change is announced once on the native stream and alerted once,
a waiting long-poll keeps a site online, and the legacy datastream is never sent the
topic."""

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets

from tests.api.v1.test_stream import stream_url
from tests.fakes import WebhookReceiver
from tests.helpers import raw, ws_url
from tests.servers import ServerProcess, register_site, start_server
from tests.services.test_alerts import alerts_of

OFFLINE_AFTER = 2.0  # seconds; the flush then runs every 0.5 s

pytestmark = pytest.mark.slow


async def _site(client: httpx.AsyncClient, site: str) -> dict[str, Any]:
    found = await client.get(f"/api/v1/sites/{site}")
    assert found.status_code == 200, found.text
    view: dict[str, Any] = found.json()
    return view


async def _until(client: httpx.AsyncClient, site: str, online: bool, wait: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        view = await _site(client, site)
        if view["online"] is online or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.1)


async def _frames(ws: Any, wait: float) -> list[dict[str, Any]]:
    """Every frame that arrives within `wait` seconds."""
    received = []
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        try:
            received.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
        except TimeoutError:
            break
    return received


async def test_two_processes_agree_and_announce_and_alert_each_change_once(
    postgres_url: str, redis_url: str, tmp_path, site: str
):
    receiver = WebhookReceiver()
    servers: list[ServerProcess] = [
        start_server(
            postgres_url,
            tmp_path,
            OBSRELAY_BUS_URL=redis_url,
            OBSRELAY_SITE_OFFLINE_AFTER=str(OFFLINE_AFTER),
            OBSRELAY_ALERT_WEBHOOK_URL=receiver.url,
            OBSRELAY_ALERT_EVENTS="offline,online",
            OBSRELAY_ALERT_OFFLINE_HOLD="0.5",
        )
        for _ in range(2)
    ]
    first, second = servers
    register_site(postgres_url, site)
    try:
        async with (
            httpx.AsyncClient(base_url=first.url) as polled,
            httpx.AsyncClient(base_url=second.url) as other,
        ):
            assert not (await _site(other, site))["online"]
            native = await websockets.connect(stream_url(second, site))
            legacy = await websockets.connect(ws_url(second.url, f"site={site}"))
            await asyncio.sleep(0.3)

            # The site polls the first process; the second sees it online.
            started = int(time.time() * 1000)
            for _ in range(3):
                body = raw({"site": site})
                assert (await polled.post("/jobs/getnewjobs", content=body)).json() == []
                await asyncio.sleep(0.2)
            view = await _until(other, site, True, wait=5)
            assert view["online"] and view["since_ms"] >= started
            assert view["last_seen"]["poll_primary"] >= started

            # A waiting long-poll (4 s, longer than the threshold) keeps it online.
            waiting = asyncio.create_task(
                polled.post("/jobs/getnewjobs", content=raw({"site": site, "wait": 4}), timeout=10)
            )
            await asyncio.sleep(OFFLINE_AFTER + 1.5)
            assert (await _site(other, site))["online"]
            assert (await waiting).json() == []

            # Then silence: both processes sweep, one records it.
            view = await _until(other, site, False, wait=OFFLINE_AFTER + 5)
            assert not view["online"]
            assert view["since_ms"] == view["last_seen_ms"] + OFFLINE_AFTER * 1000
            assert not (await _site(polled, site))["online"]

            frames = await _frames(native, 1.5)
            assert [(f["topic"], f["data"]["online"]) for f in frames] == [
                ("presence", True),
                ("presence", False),
            ], frames
            assert "id" not in frames[0]  # live only, not stored
            assert frames[1]["data"]["since_ms"] == view["since_ms"]
            assert await _frames(legacy, 0.2) == []  # the real front end never sees it

            # One alert for the absence, from one of the two processes; one when it is back.
            [offline] = alerts_of(receiver, site, wait=OFFLINE_AFTER + 1)
            assert offline["obsrelay"]["since_ms"] == view["since_ms"]
            assert (await polled.post("/jobs/getnewjobs", content=raw({"site": site}))).is_success
            [back] = alerts_of(receiver, site, wait=OFFLINE_AFTER, until=1)
            assert back["obsrelay"]["event"] == "online"
            assert back["obsrelay"]["offline_since_ms"] == view["since_ms"]
            logged = [server.log().count(f"site {site} is offline") for server in servers]
            assert sorted(logged) == [0, 1]  # recorded by one process
            await native.close()
            await legacy.close()
    finally:
        for server in servers:
            server.stop()
        receiver.close()
    for server in servers:
        assert receiver.url not in server.log()  # the webhook's URL is a secret
