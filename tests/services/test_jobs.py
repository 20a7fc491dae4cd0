"""The job queue's rules on a real store, run on SQLite and on PostgreSQL."""

import asyncio
import time

import pytest

from obsrelay.bus import MemoryBus
from obsrelay.domain.errors import Conflict, InvalidInput, NotFound
from obsrelay.domain.jobs import (
    CANCEL_ALL_ACTION,
    Queue,
)
from obsrelay.domain.lifecycle import CANCELLED, COMPLETE, EXPIRED, RECEIVED, UNREAD
from obsrelay.services.jobs import JobService
from obsrelay.services.stream import EventLog
from obsrelay.store import jobs as queries
from obsrelay.store.database import Database, open_database
from tests.helpers import USER, new_job, run_unmeasured


async def test_submitted_job_is_unread_on_both_queues_and_keeps_params(jobs: JobService, site):
    params = {"time": 30, "nested": {"a": [1, 2.5, None, True]}, "literal": "empty"}
    job = (await jobs.submit(new_job(site, params=params))).job
    assert job.primary.status == UNREAD and job.alternate.status == UNREAD
    stored, history = await jobs.get(site, job.ulid)
    assert stored.required_params == params
    assert stored.user == USER
    assert [(h.queue, h.status) for h in history] == [
        (Queue.PRIMARY, UNREAD),
        (Queue.ALTERNATE, UNREAD),
    ]


async def test_claim_returns_oldest_first_and_only_once(jobs: JobService, site):
    submitted = [(await jobs.submit(new_job(site, params={"n": i}))).job.ulid for i in range(5)]
    assert submitted == sorted(submitted)
    claimed = await jobs.claim(site, Queue.PRIMARY)
    assert [job.ulid for job in claimed] == submitted
    assert all(job.primary.status == RECEIVED for job in claimed)
    assert await jobs.claim(site, Queue.PRIMARY) == []


async def test_queues_are_independent(jobs: JobService, site):
    job = (await jobs.submit(new_job(site))).job
    assert [j.ulid for j in await jobs.claim(site, Queue.PRIMARY)] == [job.ulid]
    alternate = await jobs.claim(site, Queue.ALTERNATE)
    assert [j.ulid for j in alternate] == [job.ulid]
    assert alternate[0].primary.status == RECEIVED
    updated = await jobs.report_status(site, job.ulid, Queue.ALTERNATE, "exposing", 12)
    assert updated.alternate.status == "EXPOSING"
    assert updated.alternate.seconds_until_complete == 12
    assert updated.primary.status == RECEIVED


async def test_claim_limit_and_other_sites_untouched(jobs: JobService, site):
    other = site + "-other"
    for _ in range(3):
        await jobs.submit(new_job(site))
    await jobs.submit(new_job(other))
    assert len(await jobs.claim(site, Queue.PRIMARY, limit=2)) == 2
    assert len(await jobs.claim(site, Queue.PRIMARY)) == 1
    assert len(await jobs.claim(other, Queue.PRIMARY)) == 1


async def test_final_status_is_final(jobs: JobService, site):
    job = (await jobs.submit(new_job(site))).job
    await jobs.report_status(site, job.ulid, Queue.PRIMARY, "completed")
    again = await jobs.report_status(site, job.ulid, Queue.PRIMARY, "COMPLETE")
    assert again.primary.status == COMPLETE
    with pytest.raises(Conflict, match="already COMPLETE"):
        await jobs.report_status(site, job.ulid, Queue.PRIMARY, "STARTED")
    _, history = await jobs.get(site, job.ulid)
    assert [h.status for h in history if h.queue is Queue.PRIMARY] == [UNREAD, COMPLETE]


def count_job_reads(jobs: JobService, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ULIDs `jobs` reads from the database to decide a report on, from now on (its
    store is the real one; the read is wrapped, not replaced)."""
    writes = jobs._writes
    real = writes.read
    seen: list[str] = []

    async def counted(ulid: str):
        seen.append(ulid)
        return await real(ulid)

    monkeypatch.setattr(writes, "read", counted)
    return seen


def count_looks(jobs: JobService, monkeypatch: pytest.MonkeyPatch) -> list[Queue]:
    """The queues `jobs` looks at for an unread job before a claim, from now on (the
    look is wrapped, not replaced)."""
    probes = {id(statement): queue for queue, statement in queries.UNREAD_PROBES.items()}
    real = jobs._db.fetch
    seen: list[Queue] = []

    async def counted(statement, params):
        if id(statement) in probes:
            seen.append(probes[id(statement)])
        return await real(statement, params)

    monkeypatch.setattr(jobs._db, "fetch", counted)
    return seen


async def test_a_queue_whose_claim_took_all_it_asked_is_claimed_again_without_a_look(
    db: Database, events: EventLog, jobs: JobService, site, monkeypatch: pytest.MonkeyPatch
):
    other = JobService(db, events)  # another process on the same database
    ulids = [(await jobs.submit(new_job(site))).job.ulid for _ in range(3)]
    looks = count_looks(jobs, monkeypatch)

    async def claim(limit: int | None, queue: Queue = Queue.PRIMARY) -> list[str]:
        return [job.ulid for job in await jobs.claim(site, queue, limit=limit)]

    assert await claim(2) == ulids[:2]
    assert looks == [Queue.PRIMARY]  # nothing known of the queue: a look first
    # It took all it asked for, so more may wait: the next claims go to the store at
    # once, and find what another process added meanwhile.
    late = (await other.submit(new_job(site))).job.ulid
    assert await claim(2) == [ulids[2], late]
    assert await claim(2) == []
    assert looks == [Queue.PRIMARY]
    # A claim that took less than it asked (here: nothing) ends it.
    assert await claim(2) == []
    assert looks == [Queue.PRIMARY] * 2
    # So does one that took all there was, without a limit; and each queue is its own.
    newer = (await jobs.submit(new_job(site))).job.ulid
    assert await claim(None) == [newer]
    assert await claim(1) == []
    assert await claim(1, Queue.ALTERNATE) == [ulids[0]]
    assert looks == [Queue.PRIMARY] * 4 + [Queue.ALTERNATE]
    assert await claim(1, Queue.ALTERNATE) == [ulids[1]]
    assert looks == [Queue.PRIMARY] * 4 + [Queue.ALTERNATE]


async def test_a_report_on_a_job_just_claimed_needs_no_read(
    jobs: JobService, site, monkeypatch: pytest.MonkeyPatch
):
    ulids = [(await jobs.submit(new_job(site))).job.ulid for _ in range(3)]
    await jobs.claim(site, Queue.PRIMARY)
    reads = count_job_reads(jobs, monkeypatch)
    answered = {}
    for ulid in ulids:
        await jobs.report_status(site, ulid, Queue.PRIMARY, "EXPOSING", 30)
        answered[ulid] = await jobs.report_status(site, ulid, Queue.PRIMARY, "COMPLETE")
    assert reads == []
    # What was decided without a read is what is stored, every change in the history.
    for ulid in ulids:
        stored, history = await jobs.get(site, ulid)
        assert answered[ulid] == stored
        assert stored.primary.status == COMPLETE and stored.alternate.status == UNREAD
        steps = [h.status for h in history if h.queue is Queue.PRIMARY]
        assert steps == [UNREAD, RECEIVED, "EXPOSING", COMPLETE]
    # A repeated final status, and a refused change, are decided on the job as it is now.
    again = await jobs.report_status(site, ulids[0], Queue.PRIMARY, "COMPLETE")
    assert again == answered[ulids[0]]
    with pytest.raises(Conflict, match="already COMPLETE"):
        await jobs.report_status(site, ulids[1], Queue.PRIMARY, "STARTED")
    assert reads == [ulids[0], ulids[1]]


async def test_a_report_decides_on_the_job_as_changed_by_another_process(
    db: Database, events: EventLog, jobs: JobService, site
):
    other = JobService(db, events)  # another process on the same database
    first, second, third = [(await jobs.submit(new_job(site))).job for _ in range(3)]
    await jobs.claim(site, Queue.PRIMARY)  # this process remembers them RECEIVED
    # The other process moves them on; what this one remembers is out of date.
    await other.report_status(site, first.ulid, Queue.PRIMARY, "COMPLETE")
    await other.report_status(site, second.ulid, Queue.PRIMARY, "EXPOSING", 30)
    await other.submit(new_job(site, action=CANCEL_ALL_ACTION))

    with pytest.raises(Conflict, match="already COMPLETE"):
        await jobs.report_status(site, first.ulid, Queue.PRIMARY, "STARTED")
    with pytest.raises(Conflict, match="already CANCELLED"):
        await jobs.report_status(site, second.ulid, Queue.PRIMARY, "COMPLETE")
    assert (await jobs.report_status(site, first.ulid, Queue.PRIMARY, "COMPLETE")).primary == (
        await other.get(site, first.ulid)
    )[0].primary
    # The alternate queue, still UNREAD when remembered, was cancelled as well.
    with pytest.raises(Conflict, match="already CANCELLED"):
        await jobs.report_status(site, third.ulid, Queue.ALTERNATE, "STARTED")
    for job, steps in (
        (first, [UNREAD, RECEIVED, COMPLETE]),
        (second, [UNREAD, RECEIVED, "EXPOSING", CANCELLED]),
        (third, [UNREAD, RECEIVED, CANCELLED]),
    ):
        _, history = await jobs.get(site, job.ulid)
        assert [h.status for h in history if h.queue is Queue.PRIMARY] == steps


async def test_a_report_after_another_processs_change_is_stored_on_top_of_it(
    db: Database, events: EventLog, jobs: JobService, site
):
    other = JobService(db, events)
    job = (await jobs.submit(new_job(site))).job
    await jobs.claim(site, Queue.PRIMARY)
    await other.report_status(site, job.ulid, Queue.PRIMARY, "EXPOSING", 30)
    await other.report_status(site, job.ulid, Queue.ALTERNATE, "STARTED")
    done = await jobs.report_status(site, job.ulid, Queue.PRIMARY, "COMPLETE")
    stored, history = await jobs.get(site, job.ulid)
    assert done == stored
    assert stored.primary.status == COMPLETE and stored.alternate.status == "STARTED"
    assert [(h.queue, h.status) for h in history] == [
        (Queue.PRIMARY, UNREAD),
        (Queue.ALTERNATE, UNREAD),
        (Queue.PRIMARY, RECEIVED),
        (Queue.PRIMARY, "EXPOSING"),
        (Queue.ALTERNATE, "STARTED"),
        (Queue.PRIMARY, COMPLETE),
    ]


async def test_unknown_job_or_other_site_is_not_found(jobs: JobService, site):
    job = (await jobs.submit(new_job(site))).job
    with pytest.raises(NotFound):
        await jobs.report_status(site, "01" + "0" * 24, Queue.PRIMARY, "STARTED")
    with pytest.raises(NotFound):
        await jobs.report_status(site + "x", job.ulid, Queue.PRIMARY, "STARTED")
    with pytest.raises(NotFound):
        await jobs.get(site + "x", job.ulid)


async def test_unread_cannot_be_reported(jobs: JobService, site):
    job = (await jobs.submit(new_job(site))).job
    with pytest.raises(InvalidInput):
        await jobs.report_status(site, job.ulid, Queue.PRIMARY, "unread")


async def test_cancel_all_cancels_earlier_open_jobs_and_is_delivered(jobs: JobService, site):
    done = (await jobs.submit(new_job(site))).job
    running = (await jobs.submit(new_job(site))).job
    waiting = (await jobs.submit(new_job(site))).job
    await jobs.claim(site, Queue.PRIMARY, limit=2)
    await jobs.report_status(site, done.ulid, Queue.PRIMARY, "COMPLETE")
    await jobs.report_status(site, running.ulid, Queue.PRIMARY, "EXPOSING", 20)
    cancel = await jobs.submit(new_job(site, action=CANCEL_ALL_ACTION))
    assert {job.ulid for job in cancel.cancelled} == {done.ulid, running.ulid, waiting.ulid}
    after = {ulid: (await jobs.get(site, ulid))[0] for ulid in (done.ulid, running.ulid)}
    assert after[done.ulid].primary.status == COMPLETE
    assert after[done.ulid].alternate.status == CANCELLED
    assert after[running.ulid].primary.status == CANCELLED
    delivered = await jobs.claim(site, Queue.PRIMARY)
    assert [job.ulid for job in delivered] == [cancel.job.ulid]
    history = (await jobs.get(site, running.ulid))[1]
    assert history[-1].source == f"cancel_all:{cancel.job.ulid}"
    assert len(await jobs.recent(site, 60_000)) == 4  # kept, not deleted


async def test_cancel_unread_job_and_refuse_received_one(jobs: JobService, site):
    waiting = (await jobs.submit(new_job(site))).job
    cancelled = await jobs.cancel(site, waiting.ulid, USER)
    assert cancelled.primary.status == CANCELLED == cancelled.alternate.status
    assert (await jobs.cancel(site, waiting.ulid, USER)).primary.status == CANCELLED
    assert await jobs.claim(site, Queue.PRIMARY) == []
    received = (await jobs.submit(new_job(site))).job
    await jobs.claim(site, Queue.PRIMARY)
    with pytest.raises(Conflict, match="stop command"):
        await jobs.cancel(site, received.ulid, USER)


async def test_unread_jobs_expire(db: Database, events: EventLog, site):
    # From real time: the sweepers of the servers sharing this database expire jobs too.
    clock = [int(time.time() * 1000)]
    jobs = JobService(db, events, expiry_seconds=60, clock_ms=lambda: clock[0])
    old = (await jobs.submit(new_job(site))).job
    clock[0] += 61_000
    fresh = (await jobs.submit(new_job(site))).job
    assert [j.ulid for j in await jobs.claim(site, Queue.PRIMARY)] == [fresh.ulid]
    # Bounded batches, oldest first: other tests' unread jobs in this database may come
    # before this one.
    for _ in range(50):
        await jobs.expire_stale(batch=100)
        expired, history = await jobs.get(site, old.ulid)
        if expired.alternate.status == EXPIRED:
            break
    assert expired.primary.status == EXPIRED and expired.alternate.status == EXPIRED
    assert history[-1].source == "expiry"


async def test_recent_and_paging(jobs: JobService, site):
    ulids = [(await jobs.submit(new_job(site))).job.ulid for _ in range(7)]
    assert [j.ulid for j in await jobs.recent(site, 60_000)] == ulids
    seen, after = [], None
    while True:
        page = await jobs.page(site, after=after, limit=3)
        seen += [job.ulid for job in page.jobs]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == ulids
    newest = await jobs.page(site, newest_first=True, limit=2)
    assert [j.ulid for j in newest.jobs] == ulids[::-1][:2]
    await jobs.claim(site, Queue.PRIMARY, limit=1)
    received = await jobs.page(site, status=RECEIVED)
    assert [j.ulid for j in received.jobs] == ulids[:1]


@pytest.mark.slow
def test_twenty_pollers_race_over_three_hundred_jobs(database_url: str, site: str):
    """Jobs arrive while 20 pollers claim small batches: each is delivered exactly once.

    A race, run out of coverage's reach (see `run_unmeasured`) on a loop of its own."""
    total = 300
    delivered: list[str] = []

    async def race() -> list[str]:
        db = open_database(database_url)
        await db.upgrade()
        jobs = JobService(db, EventLog(db, MemoryBus()))
        producer_done = asyncio.Event()

        async def produce() -> list[str]:
            made = []
            for i in range(total):
                made.append((await jobs.submit(new_job(site, params={"n": i}))).job.ulid)
            producer_done.set()
            return made

        async def poll() -> None:
            while True:
                finished = producer_done.is_set()
                claimed = await jobs.claim(site, Queue.PRIMARY, limit=7)
                delivered.extend(job.ulid for job in claimed)
                if finished and not claimed:
                    return
                if not claimed:
                    await asyncio.sleep(0.05)  # a real poller waits between polls

        try:
            producer = asyncio.create_task(produce())
            await asyncio.gather(producer, *(poll() for _ in range(20)))
            return producer.result()
        finally:
            await db.close()

    made = run_unmeasured(lambda: asyncio.run(race()))
    assert len(delivered) == total, "a job was lost or delivered twice"
    assert sorted(delivered) == sorted(made)
    assert len(set(delivered)) == total
