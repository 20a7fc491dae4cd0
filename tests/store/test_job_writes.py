"""JobWrites on both backends: new jobs and status changes stored with their events,
whether they come alone or many together (PostgreSQL's batches)."""

import asyncio
import dataclasses
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from obsrelay.domain.ids import MonotonicUlids
from obsrelay.domain.jobs import UNKNOWN_SECONDS, Identity, Job, Queue, QueueState
from obsrelay.domain.lifecycle import RECEIVED, UNREAD, Cause
from obsrelay.services.stream import encode
from obsrelay.store import jobs as queries
from obsrelay.store import stream
from obsrelay.store.database import Database
from obsrelay.store.job_writes import Claimed, JobWrites

_ULIDS = MonotonicUlids()


def _job(site: str, now_ms: int = 1_790_000_000_000, **params: object) -> Job:
    unread = QueueState(UNREAD, UNKNOWN_SECONDS, now_ms)
    return Job(
        ulid=_ULIDS.new(now_ms),
        site=site,
        created_ms=now_ms,
        device_type="camera",
        device_instance="camera1",
        action="expose",
        required_params={"time": "30", **params},
        optional_params={},
        user=Identity("u1", "User One", ("observer",)),
        primary=unread,
        alternate=unread,
    )


def _data(job: Job) -> str:
    return encode(job.to_data())


async def _events(db: Database, site: str) -> list[tuple[int, str]]:
    rows = await db.read(lambda conn: stream.events_after(conn, site, 0, 10_000))
    return [(row.seq, row.data) for row in rows]


async def _waiting(db: Database, site: str, count: int) -> tuple[JobWrites, list[Job], QueueState]:
    """JobWrites with `count` new jobs of `site` stored, and the state a claim moves
    them to."""
    writes = JobWrites(db, "job", event_data=_data)
    new = [_job(site, n=i) for i in range(count)]
    for job in new:
        await writes.insert(job, _data(job))
    return writes, new, QueueState(RECEIVED, UNKNOWN_SECONDS, new[-1].created_ms + 1)


def _claim_started(
    writes: JobWrites,
    new: list[Job],
    received: QueueState,
    answer: Callable[[list[Job]], str],
    limit: int | None,
    claim_id: str | None = None,
) -> "asyncio.Future[Claimed[str]]":
    """A claim on the primary queue of the site of `new`, under way."""
    return asyncio.ensure_future(
        writes.claim(
            new[0].site,
            Queue.PRIMARY,
            received,
            "site",
            answer,
            floor_ulid=new[0].ulid,
            limit=limit,
            claim_id=claim_id,
        )
    )


async def test_jobs_stored_together_keep_each_sites_numbers_gap_free(db: Database, site: str):
    writes = JobWrites(db, "job", event_data=_data)
    sites = [f"{site}-{letter}" for letter in "abc"]
    new = [_job(sites[i % 3], n=i) for i in range(60)]
    numbers = await asyncio.gather(*(writes.insert(job, encode(job.to_data())) for job in new))
    for name in sites:
        mine = [(number, job) for number, job in zip(numbers, new, strict=True) if job.site == name]
        # Numbered 1..20 in the order the writes came, each event the job's own data.
        assert [number for number, _ in mine] == list(range(1, 21))
        stored = await _events(db, name)
        assert stored == [(number, encode(job.to_data())) for number, job in mine]
    for job in new:
        assert await writes.read(job.ulid) == job


async def test_a_bad_job_among_many_fails_alone(db: Database, site: str):
    writes = JobWrites(db, "job", event_data=_data)
    first = _job(site)
    await writes.insert(first, "{}")
    again = [_job(site), first, _job(site)]  # the middle one's ULID is taken
    results = await asyncio.gather(
        *(writes.insert(job, "{}") for job in again), return_exceptions=True
    )
    assert results[0] == 2 and results[2] == 3, results
    assert "unique" in str(results[1]).lower(), results[1]  # the driver's own words
    assert [seq for seq, _ in await _events(db, site)] == [1, 2, 3]
    assert await writes.read(again[0].ulid) == again[0]


async def test_a_change_is_stored_only_if_the_job_is_as_read(db: Database, site: str):
    writes = JobWrites(db, "job", event_data=_data)
    job = _job(site)
    await writes.insert(job, "{}")
    received = QueueState(RECEIVED, UNKNOWN_SECONDS, job.created_ms + 1)
    running = QueueState("EXPOSING", 30, job.created_ms + 2)

    async def change(read: Job, queue: Queue, to: QueueState) -> int | None:
        return await writes.change_if_unchanged(read, queue, Cause.REPORT, to, "site", "{}")

    # Two changes decided on the same read, together: one is stored, the other is told
    # that the job changed.
    results = await asyncio.gather(
        change(job, Queue.PRIMARY, received), change(job, Queue.PRIMARY, running)
    )
    assert sorted(results, key=lambda seq: seq or 0) == [None, 2]
    now = await writes.read(job.ulid)
    assert now is not None
    won = received if results[0] == 2 else running
    assert now == job.with_state(Queue.PRIMARY, won)
    # A change to the other queue, decided on the old read, is refused as well; on the
    # job as it is now it is stored, and the first queue keeps its state.
    assert await change(job, Queue.ALTERNATE, received) is None
    assert await change(now, Queue.ALTERNATE, received) == 3
    after = await writes.read(job.ulid)
    assert after == dataclasses.replace(now, alternate=received)
    history = await db.read(lambda conn: queries.get_history(conn, job.ulid))
    assert [(entry.queue, entry.status) for entry in history] == [
        (Queue.PRIMARY, won.status),
        (Queue.ALTERNATE, RECEIVED),
    ]


async def test_many_changes_of_many_jobs_at_once(db: Database, site: str):
    writes = JobWrites(db, "job", event_data=_data)
    new = [_job(site) for _ in range(30)]
    await asyncio.gather(*(writes.insert(job, "{}") for job in new))
    to = QueueState("COMPLETE", UNKNOWN_SECONDS, new[-1].created_ms + 5)
    numbers = await asyncio.gather(
        *(
            writes.change_if_unchanged(job, Queue.PRIMARY, Cause.REPORT, to, "site", job.ulid)
            for job in new
        )
    )
    assert numbers == list(range(31, 61))
    events = await _events(db, site)
    assert [data for _, data in events[30:]] == [job.ulid for job in new]
    for job in new:
        assert await writes.read(job.ulid) == job.with_state(Queue.PRIMARY, to)


async def test_a_claim_stores_nothing_when_its_answer_cannot_be_made(db: Database, site: str):
    writes, new, received = await _waiting(db, site, 3)

    def refuse(jobs: list[Job]) -> str:
        raise ValueError("cannot render")

    async def claim(answer: Callable[[list[Job]], str], limit: int | None) -> Claimed[str]:
        return await _claim_started(writes, new, received, answer, limit, "claim-1")

    with pytest.raises(ValueError):
        await claim(refuse, None)
    assert [await writes.read(job.ulid) for job in new] == new
    assert len(await _events(db, site)) == 3

    taken = await claim(lambda jobs: ",".join(job.ulid for job in jobs), 2)
    assert taken.answer == f"{new[0].ulid},{new[1].ulid}"
    assert taken.jobs == [job.with_state(Queue.PRIMARY, received) for job in new[:2]]
    assert taken.first_seq == 4 and taken.data == [_data(job) for job in taken.jobs]
    assert (await _events(db, site))[3:] == [(4, taken.data[0]), (5, taken.data[1])]
    remembered = await db.read(
        lambda conn: queries.jobs_of_claim(conn, site, Queue.PRIMARY, "claim-1")
    )
    assert remembered == taken.jobs
    history = await db.read(lambda conn: queries.get_history(conn, new[0].ulid))
    assert [(entry.queue, entry.status, entry.source) for entry in history] == [
        (Queue.PRIMARY, RECEIVED, "site")
    ]
    # The rest, and then nothing: an empty claim stores no event.
    assert [job.ulid for job in (await claim(str, None)).jobs] == [new[2].ulid]
    assert (await claim(str, None)).jobs == []
    assert len(await _events(db, site)) == 6


async def test_more_jobs_at_once_than_one_batch_takes(db: Database, site: str):
    from obsrelay.store.batching import MAX_BATCH

    writes = JobWrites(db, "job", event_data=_data)
    new = [_job(site) for _ in range(MAX_BATCH + 20)]
    numbers = await asyncio.gather(*(writes.insert(job, "{}") for job in new))
    assert numbers == list(range(1, MAX_BATCH + 21))


async def test_a_process_remembers_the_jobs_it_saw_lately(
    db: Database, site: str, monkeypatch: pytest.MonkeyPatch
):
    from obsrelay.store import job_writes

    monkeypatch.setattr(job_writes, "REMEMBERED_JOBS", 3)
    writes = JobWrites(db, "job", event_data=_data)
    new = [_job(site) for _ in range(4)]
    for job in new:
        await writes.insert(job, _data(job))
    assert [writes.remembered(job.ulid) for job in new] == [None] * 4  # not yet seen
    received = QueueState(RECEIVED, UNKNOWN_SECONDS, new[-1].created_ms + 1)
    claimed = await writes.claim(
        site,
        Queue.PRIMARY,
        received,
        "site",
        str,
        floor_ulid=new[0].ulid,
        limit=3,
        claim_id=None,
    )
    assert [writes.remembered(job.ulid) for job in new[:3]] == claimed.jobs
    # A change stored is remembered as stored; one refused leaves what was remembered.
    running = QueueState("EXPOSING", 30, received.updated_ms + 1)
    await writes.change_if_unchanged(
        claimed.jobs[0], Queue.PRIMARY, Cause.REPORT, running, "site", "{}"
    )
    assert writes.remembered(new[0].ulid) == claimed.jobs[0].with_state(Queue.PRIMARY, running)
    assert writes.remembered(new[0].ulid) == await writes.read(new[0].ulid)
    assert (
        await writes.change_if_unchanged(
            claimed.jobs[0], Queue.PRIMARY, Cause.REPORT, running, "site", "{}"
        )
        is None
    )
    assert writes.remembered(new[0].ulid) == claimed.jobs[0].with_state(Queue.PRIMARY, running)
    # A read is remembered too; past REMEMBERED_JOBS the one seen longest ago is forgotten.
    assert await writes.read(new[3].ulid) == new[3]
    assert writes.remembered(new[3].ulid) == new[3]
    assert writes.remembered(new[1].ulid) is None
    assert [writes.remembered(job.ulid) is not None for job in new] == [True, False, True, True]


async def test_claims_that_come_together_are_dealt_the_oldest_jobs_in_turn(db: Database, site: str):
    writes, new, received = await _waiting(db, site, 12)

    def claim(
        limit: int | None, claim_id: str | None = None, late_ms: int = 0
    ) -> "asyncio.Future[Claimed[str]]":
        to = QueueState(RECEIVED, UNKNOWN_SECONDS, received.updated_ms + late_ms)
        return _claim_started(
            writes, new, to, lambda jobs: ",".join(j.ulid for j in jobs), limit, claim_id
        )

    # Five claims that come at once share one transaction: each is dealt up to its
    # limit, in the order they came, and all take the state of the latest of them.
    claimed = await asyncio.gather(
        claim(2),
        claim(3, "claim-b", 1),
        claim(1, None, 2),
        claim(4, "claim-d", 3),
        claim(5, None, 4),
    )
    latest = QueueState(RECEIVED, UNKNOWN_SECONDS, received.updated_ms + 4)
    shares = [[job.ulid for job in each.jobs] for each in claimed]
    ulids = [job.ulid for job in new]
    assert shares == [ulids[0:2], ulids[2:5], ulids[5:6], ulids[6:10], ulids[10:12]]
    for each in claimed:
        assert each.answer == ",".join(job.ulid for job in each.jobs)
        assert each.jobs == [
            job.with_state(Queue.PRIMARY, latest) for job in new if job.ulid in each.answer
        ]
        # Each claim's events are the numbers of its own jobs, in order.
        assert each.data == [_data(job) for job in each.jobs]
    events = dict(await _events(db, site))
    for each in claimed:
        numbers = range(each.first_seq, each.first_seq + len(each.jobs))
        assert [events[number] for number in numbers] == each.data
    assert sorted(events) == list(range(1, 25))  # 12 new, 12 received: gap-free

    # Each identified claim remembers its own jobs, and only those.
    def jobs_of(claim_id: str) -> Callable[[sa.Connection], list[Job]]:
        return lambda conn: queries.jobs_of_claim(conn, site, Queue.PRIMARY, claim_id)

    assert await db.read(jobs_of("claim-b")) == claimed[1].jobs
    assert await db.read(jobs_of("claim-d")) == claimed[3].jobs
    # Nothing is left, and a claim that takes all takes nothing.
    assert (await claim(None)).jobs == []


async def test_a_claim_whose_answer_fails_fails_alone_in_its_batch(db: Database, site: str):
    writes, new, received = await _waiting(db, site, 4)

    def refuse(jobs: list[Job]) -> str:
        if jobs:
            raise ValueError("cannot render")
        return ""

    def claim(answer: Callable[[list[Job]], str]) -> "asyncio.Future[Claimed[str]]":
        return _claim_started(writes, new, received, answer, 1)

    first, bad, good = claim(str), claim(refuse), claim(str)  # at once: one batch
    assert len((await first).jobs) == 1
    with pytest.raises(ValueError):
        await bad
    # The batch was rolled back and each claim tried again alone, in turn: the first got
    # the oldest job, the one that cannot be answered took nothing, and the good one got
    # the oldest job left.
    assert [job.ulid for job in (await good).jobs] == [new[1].ulid]
    stored = [await writes.read(job.ulid) for job in new]
    assert [job.primary.status for job in stored if job] == [RECEIVED, RECEIVED, UNREAD, UNREAD]
    assert len(await _events(db, site)) == 4 + 2
