"""Long-poll: getnewjobs and the native claim with `wait`, on real servers.

The session's servers re-check only every 25 s, so a waiting claim that gets its job
well inside a 20 s wait was woken by the bus.
"""

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.helpers import newjob_body, raw
from tests.servers import ServerProcess, register_site, start_server

WAIT = 20


async def _submit(client: httpx.AsyncClient, site: str) -> str:
    answer = await client.post("/jobs/newjob", content=raw(newjob_body(site)))
    assert answer.status_code == 200, answer.text
    ulid: str = answer.json()["ulid"]
    return ulid


async def _history(client: httpx.AsyncClient, site: str, ulid: str) -> list[str]:
    answer = await client.get(f"/api/v1/sites/{site}/jobs/{ulid}")
    assert answer.status_code == 200
    return [f"{h['queue']}:{h['status']}" for h in answer.json()["history"]]


async def _wait_for_waiting() -> None:
    # Nothing tells from outside that a request is held; give it time to get there.
    await asyncio.sleep(0.3)


async def test_getnewjobs_wakes_when_a_job_arrives(server: ServerProcess, site: str):
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT + 10) as client:
        poll = asyncio.create_task(
            client.post("/jobs/getnewjobs", content=raw({"site": site, "wait": WAIT}))
        )
        await _wait_for_waiting()
        assert not poll.done()
        ulid = await _submit(client, site)
        answer = await poll
        assert answer.status_code == 200
        assert answer.headers["x-obsrelay-wait"] == str(WAIT)
        assert [job["ulid"] for job in answer.json()] == [ulid]
        assert answer.json()[0]["statusId"] == f"RECEIVED#{ulid}"


async def test_native_claim_wakes_and_a_job_waiting_answers_at_once(
    server: ServerProcess, site: str
):
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT + 10) as client:
        claim = f"/api/v1/sites/{site}/jobs/claim"
        waiting = asyncio.create_task(client.post(claim, json={"wait": WAIT, "queue": "alternate"}))
        await _wait_for_waiting()
        ulid = await _submit(client, site)
        answer = await waiting
        assert [job["ulid"] for job in answer.json()] == [ulid]
        assert answer.json()[0]["alternate"]["status"] == "RECEIVED"
        assert answer.json()[0]["primary"]["status"] == "UNREAD"

        # A job already waiting: answered at once, even with the longest wait.
        second = await _submit(client, site)
        answer = await client.post(claim, json={"wait": 600})
        assert [job["ulid"] for job in answer.json()] == [ulid, second]
        assert answer.headers["x-obsrelay-wait"] == "25"
        assert "The longest wait is 25 seconds" in answer.headers["x-obsrelay-warning"]


async def test_the_wait_ends_with_an_empty_list(server: ServerProcess, site: str):
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        answer = await client.post(
            "/jobs/getnewjobs", content=raw({"site": site}), params={"wait": "0.4"}
        )
        assert (answer.status_code, answer.json()) == (200, [])
        assert answer.headers["x-obsrelay-wait"] == "0.4"
        answer = await client.post(f"/api/v1/sites/{site}/jobs/claim", json={"wait": 0.4})
        assert (answer.status_code, answer.json()) == (200, [])
        # A job for another site or the other queue does not end the wait early with it.
        other = asyncio.create_task(
            client.post(f"/api/v1/sites/{site}/jobs/claim", json={"wait": 1})
        )
        await client.post("/jobs/getnewjobs", content=raw({"site": f"{site}-other"}))
        await _submit(client, f"{site}-other")
        assert (await other).json() == []


async def test_without_wait_nothing_changes(server: ServerProcess, site: str):
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        answer = await client.post("/jobs/getnewjobs", content=raw({"site": site}))
        assert (answer.status_code, answer.json()) == (200, [])
        assert "x-obsrelay-wait" not in answer.headers


async def test_a_client_that_hangs_up_claims_nothing(server: ServerProcess, site: str):
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        for path, body in (
            ("/jobs/getnewjobs", raw({"site": site, "wait": WAIT})),
            (f"/api/v1/sites/{site}/jobs/claim", b'{"wait": 20}'),
        ):
            with pytest.raises(httpx.ReadTimeout):
                await client.post(
                    path,
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=httpx.Timeout(10, read=0.5),
                )
            ulid = await _submit(client, site)
            await asyncio.sleep(0.3)  # the gone request had its chance to take the job
            assert await _history(client, site, ulid) == ["primary:UNREAD", "alternate:UNREAD"]
            answer = await client.post("/jobs/getnewjobs", content=raw({"site": site}))
            assert [job["ulid"] for job in answer.json()] == [ulid]


async def test_many_waiters_share_the_jobs_each_exactly_once(server: ServerProcess, site: str):
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT + 10) as client:
        got: list[str] = []

        async def poll_until_empty() -> None:
            while True:
                answer = await client.post(
                    f"/api/v1/sites/{site}/jobs/claim", json={"wait": 1.5, "limit": 1}
                )
                if not answer.json():
                    return
                got.extend(job["ulid"] for job in answer.json())

        pollers = [asyncio.create_task(poll_until_empty()) for _ in range(8)]
        await _wait_for_waiting()
        submitted = [await _submit(client, site) for _ in range(30)]
        await asyncio.gather(*pollers)
        assert sorted(got) == sorted(submitted)


async def test_claim_id_makes_a_retry_return_the_same_jobs(server: ServerProcess, site: str):
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        claim = f"/api/v1/sites/{site}/jobs/claim"
        first = [await _submit(client, site) for _ in range(2)]
        taken = await client.post(claim, json={"claim_id": "attempt-000001"})
        assert [job["ulid"] for job in taken.json()] == first
        later = await _submit(client, site)
        # The answer was lost, say: the retry with the same id gets the same jobs, only.
        retried = await client.post(claim, json={"claim_id": "attempt-000001", "wait": 5})
        assert [job["ulid"] for job in retried.json()] == first
        fresh = await client.post(claim, json={"claim_id": "attempt-000002"})
        assert [job["ulid"] for job in fresh.json()] == [later]
        # Another site's claim id finds nothing of this site's.
        elsewhere = await client.post(
            f"/api/v1/sites/{site}-x/jobs/claim", json={"claim_id": "attempt-000001"}
        )
        assert elsewhere.json() == []
        history = await _history(client, site, first[0])
        assert history.count("primary:RECEIVED") == 1


@pytest.mark.parametrize(
    ("wait", "words"),
    [("soon", "number of seconds"), (-1, "from 0 up"), ([5], "number"), (True, "number")],
)
async def test_a_bad_wait_is_refused_with_a_sentence(
    server: ServerProcess, site: str, wait: object, words: str
):
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        answer = await client.post("/jobs/getnewjobs", content=raw({"site": site, "wait": wait}))
        assert (answer.status_code, answer.json()) == (400, [])
        assert words in answer.headers["x-obsrelay-error"]
        native = await client.post(f"/api/v1/sites/{site}/jobs/claim", json={"wait": wait})
        assert native.status_code == 422
        assert "wait" in native.json()["detail"]
        bad_id = await client.post(f"/api/v1/sites/{site}/jobs/claim", json={"claim_id": "a b"})
        assert bad_id.status_code == 422


@pytest.mark.slow
async def test_long_poll_across_two_processes_on_postgres_and_redis(
    postgres_url: str, redis_url: str, tmp_path: Path, site: str
):
    first, second = (
        start_server(
            postgres_url, tmp_path, OBSRELAY_BUS_URL=redis_url, OBSRELAY_LONGPOLL_RECHECK="25"
        )
        for _ in range(2)
    )
    register_site(postgres_url, site)
    try:
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=WAIT + 10) as waiting_side,
            httpx.AsyncClient(base_url=second.url, timeout=10) as submitting_side,
        ):
            polls = [
                asyncio.create_task(
                    waiting_side.post("/jobs/getnewjobs", content=raw({"site": site, "wait": WAIT}))
                )
                for _ in range(2)
            ]
            await _wait_for_waiting()
            ulid = await _submit(submitting_side, site)
            done, waiting = await asyncio.wait(polls, return_when=asyncio.FIRST_COMPLETED)
            assert [job["ulid"] for job in done.pop().result().json()] == [ulid]
            # The other poll has nothing to get: its client hangs up instead of waiting
            # out its 20 s, and the job was received once.
            for poll in waiting:
                poll.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            assert await _history(submitting_side, site, ulid) == [
                "primary:UNREAD",
                "alternate:UNREAD",
                "primary:RECEIVED",
            ]
    finally:
        first.stop()
        second.stop()


async def test_the_recheck_finds_a_job_whose_notice_never_came(
    postgres_url: str, tmp_path: Path, site: str
):
    # Two processes with in-memory buses: the waiting one never hears of the job.
    first = start_server(postgres_url, tmp_path, OBSRELAY_LONGPOLL_RECHECK="0.5")
    second = start_server(postgres_url, tmp_path)
    register_site(postgres_url, site)
    try:
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=WAIT + 10) as waiting_side,
            httpx.AsyncClient(base_url=second.url, timeout=10) as submitting_side,
        ):
            poll = asyncio.create_task(
                waiting_side.post("/jobs/getnewjobs", content=raw({"site": site, "wait": WAIT}))
            )
            await _wait_for_waiting()
            ulid = await _submit(submitting_side, site)
            assert [job["ulid"] for job in (await poll).json()] == [ulid]
    finally:
        first.stop()
        second.stop()


@pytest.mark.slow
async def test_stopping_the_server_ends_the_waits(tmp_path: Path, site: str):
    server = start_server(None, tmp_path)
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT + 10) as client:
        poll = asyncio.create_task(
            client.post("/jobs/getnewjobs", content=raw({"site": site, "wait": WAIT}))
        )
        await _wait_for_waiting()
        server.process.terminate()
        # Well inside the wait: the server let the request go instead of holding it.
        await asyncio.to_thread(server.process.wait, WAIT / 2)
        answer = await poll
        assert (answer.status_code, answer.json()) == (200, [])
        assert "Application shutdown complete" in server.log()
