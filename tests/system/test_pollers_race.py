"""Twenty pollers race over HTTP against two server processes sharing one database.

Jobs are submitted through one server while pollers claim through both, on SQLite
(two processes contending for one file's write lock) and on PostgreSQL (SKIP LOCKED).
Every job must be delivered exactly once, and none lost. The two servers are the race's
own, and they and the clients run without coverage's tracer (see `run_unmeasured`).
"""

import asyncio
import contextlib
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import assert_wire_job, newjob_body, run_unmeasured
from tests.servers import ServerProcess, register_site, start_server

pytestmark = pytest.mark.slow  # a race over two processes

# Enough for every poller to contend on every round; more only takes longer.
TOTAL_JOBS = 600
POLLERS = 20


@pytest.fixture
def two_servers(database_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ...]]:
    servers: list[ServerProcess] = []
    try:
        for name in ("first", "second"):
            (workdir := tmp_path / name).mkdir()
            servers.append(start_server(database_url, workdir, measured=False))
        yield tuple(servers)
    finally:
        for server in servers:
            server.stop()


def test_twenty_pollers_over_two_servers(two_servers, site):
    server, second_server = two_servers
    register_site(server.database_url, site)
    submitted: list[str] = []
    delivered: list[str] = []
    producing = True

    async def produce(client: httpx.AsyncClient, share: range) -> None:
        for _ in share:
            response = await client.post("/jobs/newjob", content=json.dumps(newjob_body(site)))
            assert response.status_code == 200, response.text
            submitted.append(response.json()["ulid"])

    async def poll(client: httpx.AsyncClient) -> None:
        while True:
            finished = not producing
            response = await client.post("/jobs/getnewjobs", content=json.dumps({"site": site}))
            assert response.status_code == 200, response.text
            jobs = response.json()
            for job in jobs:
                assert_wire_job(job)
            delivered.extend(job["ulid"] for job in jobs)
            if finished and not jobs:
                return
            await asyncio.sleep(0.02)

    async def race() -> None:
        nonlocal producing
        # A client, with one connection, for each poller and producer: each keeps its own
        # connection busy, as a site does, and a request does not scan the others' (a
        # shared pool checks each of its connections on every request). Idle connections
        # are let go before the server's keep-alive closes them (5 s), so that no request
        # is sent on a connection the server is closing at that moment.
        limits = httpx.Limits(max_connections=1, keepalive_expiry=2)
        no_tls = ssl.create_default_context()  # plain HTTP: one context for all, unused
        async with contextlib.AsyncExitStack() as clients:

            async def client(url: str) -> httpx.AsyncClient:
                made = httpx.AsyncClient(base_url=url, timeout=30, limits=limits, verify=no_tls)
                return await clients.enter_async_context(made)

            pollers = [
                asyncio.create_task(poll(await client(second_server.url if i % 2 else server.url)))
                for i in range(POLLERS)
            ]
            shares = [range(i, TOTAL_JOBS, 4) for i in range(4)]
            await asyncio.gather(*[produce(await client(server.url), share) for share in shares])
            producing = False
            await asyncio.gather(*pollers)

    run_unmeasured(lambda: asyncio.run(race()))

    assert len(submitted) == TOTAL_JOBS
    assert len(delivered) == len(set(delivered)), "a job was delivered twice"
    assert sorted(delivered) == sorted(submitted), "a job was lost"
