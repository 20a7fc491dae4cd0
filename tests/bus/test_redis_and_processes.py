"""The Redis bus, and several server processes on PostgreSQL and Redis acting as one."""

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from obsrelay.bus import Committed, Live, Notice
from obsrelay.bus.redis import RedisBus
from tests.helpers import newjob_body, newlog_body, raw, ws_url
from tests.servers import RedisProcess, ServerProcess, start_server, unavailable


async def test_redis_bus_reaches_every_process(redis_url: str, site: str):
    # The channel is shared with every other test that uses Redis: only `site`'s count.
    received: list[list[Notice]] = [[], []]
    buses = [RedisBus(redis_url), RedisBus(redis_url)]
    try:
        for bus, inbox in zip(buses, received, strict=True):
            await bus.start(inbox.append)
        deadline = time.monotonic() + 5
        # Polling other objects' state, with a deadline: no event to wait on.
        while not all(bus.healthy for bus in buses) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        sent: list[Committed | Live] = [
            Committed(site, 7, new_jobs=True),
            Live(site, "sitestatus", [1]),
        ]
        await buses[0].publish(sent[0])
        await buses[1].publish(sent[1])

        def ours(inbox: list[Notice]) -> list[Notice]:
            return [notice for notice in inbox if getattr(notice, "site", None) == site]

        while sum(len(ours(inbox)) for inbox in received) < 4 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for inbox in received:
            assert sorted(ours(inbox), key=repr) == sorted(sent, key=repr)
    finally:
        for bus in buses:
            await bus.close()


async def test_an_unreachable_redis_never_fails_a_publisher():
    from tests.servers import free_port

    bus = RedisBus(f"redis://127.0.0.1:{free_port()}/0")
    await bus.start(lambda message: None)
    try:
        for _ in range(100):
            await bus.publish(Committed("mrc1", 1))  # returns at once, raises nothing
        await asyncio.sleep(0.3)
        assert not bus.healthy
    finally:
        await bus.close()


@pytest.fixture
def private_redis(tmp_path, redis_url: str) -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        unavailable("the restart test needs the redis-server program")
    redis = RedisProcess(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


async def _collect(ws: Any, into: list[dict[str, Any]], until: int, wait: float) -> None:
    deadline = time.monotonic() + wait
    while len(into) < until and time.monotonic() < deadline:
        try:
            into.append(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
        except TimeoutError:
            continue


@pytest.mark.slow
async def test_two_servers_act_as_one_through_a_redis_restart(
    postgres_url: str, private_redis: RedisProcess, tmp_path, site: str
):
    first = start_server(postgres_url, tmp_path, OBSRELAY_BUS_URL=private_redis.url)
    second = start_server(postgres_url, tmp_path, OBSRELAY_BUS_URL=private_redis.url)
    servers: list[ServerProcess] = [first, second]
    try:
        ws = await websockets.connect(ws_url(first.url, f"site={site}"))
        await ws.send(json.dumps({"action": "updatesubscribersite", "site": site}))
        await asyncio.sleep(0.5)
        received: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=second.url) as other:
            for i in range(15):
                assert (
                    await other.post("/logs/newlog", content=newlog_body(site, f"a{i}"))
                ).status_code == 200
            job = await other.post("/jobs/newjob", content=raw(newjob_body(site)))
            assert job.status_code == 200
            await _collect(ws, received, 16, wait=10)
            assert len(received) == 16

            private_redis.stop()
            for i in range(10):  # the servers keep answering while Redis is away
                assert (
                    await other.post("/logs/newlog", content=newlog_body(site, f"b{i}"))
                ).status_code == 200
            async with httpx.AsyncClient(base_url=first.url) as same:
                assert (await same.get("/readyz")).status_code == 200
                assert (
                    await same.post("/logs/newlog", content=newlog_body(site, "b-local"))
                ).status_code == 200
            await _collect(ws, received, 27, wait=10)  # found by the re-check timer

            private_redis.start()
            await asyncio.sleep(1.5)  # the buses reconnect with back-off
            for i in range(10):
                assert (
                    await other.post("/logs/newlog", content=newlog_body(site, f"c{i}"))
                ).status_code == 200
            await _collect(ws, received, 37, wait=10)
        await ws.close()

        ids = [int(frame["id"]) for frame in received]
        assert ids == list(range(ids[0], ids[0] + 37)), "every event once, in order"
        texts = [f["data"]["message"] for f in received if f["topic"] == "userstatus"]
        expected = (
            [f"a{i}" for i in range(15)]
            + [f"b{i}" for i in range(10)]
            + ["b-local"]
            + [f"c{i}" for i in range(10)]
        )
        assert texts == expected
        assert "lost Redis" in first.log() and "reconnected" in first.log()
    finally:
        for server in servers:
            server.stop()
