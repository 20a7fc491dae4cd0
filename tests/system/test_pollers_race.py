"""Twenty pollers race over HTTP against two server processes sharing one database.

Jobs are submitted through one server while pollers claim through both, on SQLite
(two processes contending for one file's write lock) and on PostgreSQL (SKIP LOCKED).
Every job must be delivered exactly once, and none lost.
"""

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import assert_wire_job, newjob_body
from tests.servers import ServerProcess, start_server

pytestmark = pytest.mark.slow  # a race over two processes

# Enough for every poller to contend on every round; more only takes longer.
TOTAL_JOBS = 600
POLLERS = 20


@pytest.fixture
def second_server(server: ServerProcess, tmp_path) -> Iterator[ServerProcess]:
    other = start_server(server.database_url, tmp_path)
    try:
        yield other
    finally:
        other.stop()


async def test_twenty_pollers_over_two_servers(server, second_server, site):
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

    # Idle connections are let go before the server's keep-alive closes them (5 s), so
    # that no request is sent on a connection the server is closing at that moment.
    limits = httpx.Limits(max_connections=40, keepalive_expiry=2)
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as first,
        httpx.AsyncClient(base_url=second_server.url, timeout=30, limits=limits) as second,
    ):
        pollers = [asyncio.create_task(poll(first if i % 2 else second)) for i in range(POLLERS)]
        shares = [range(i, TOTAL_JOBS, 4) for i in range(4)]
        await asyncio.gather(*(produce(first, share) for share in shares))
        producing = False
        await asyncio.gather(*pollers)

    assert len(submitted) == TOTAL_JOBS
    assert len(delivered) == len(set(delivered)), "a job was delivered twice"
    assert sorted(delivered) == sorted(submitted), "a job was lost"
