"""An empty poll answered from memory (services/empty_queues.py): never at the price of
a job that is there. The rules alone with a clock of the test's own, then the job
queue on a real store, on SQLite and on PostgreSQL, with a second service on the same
database standing for another process."""

import asyncio

from obsrelay.bus import Committed, MemoryBus, Resync
from obsrelay.domain.jobs import Queue
from obsrelay.services.empty_queues import EmptyQueues
from obsrelay.services.jobs import JobService
from obsrelay.services.stream import EventLog
from obsrelay.store.database import Database
from tests.helpers import new_job


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_queue_found_empty_is_known_empty_for_its_lifetime_only():
    clock = Clock()
    empty = EmptyQueues(0.5, clock=clock)
    empty.found_empty("s", Queue.PRIMARY, empty.version("s"))
    assert empty.is_empty("s", Queue.PRIMARY)
    assert not empty.is_empty("s", Queue.ALTERNATE)
    assert not empty.is_empty("other", Queue.PRIMARY)
    clock.now += 0.49
    assert empty.is_empty("s", Queue.PRIMARY)
    clock.now += 0.02
    assert not empty.is_empty("s", Queue.PRIMARY)


def test_a_new_job_ends_it_on_both_queues_of_its_site_only():
    empty = EmptyQueues(10)
    for site in ("s", "t"):
        for queue in Queue:
            empty.found_empty(site, queue, empty.version(site))
    empty.new_jobs("s")
    assert not empty.is_empty("s", Queue.PRIMARY) and not empty.is_empty("s", Queue.ALTERNATE)
    assert empty.is_empty("t", Queue.PRIMARY)


def test_a_look_that_a_new_job_overtook_is_not_kept():
    empty = EmptyQueues(10)
    before = empty.version("s")
    empty.new_jobs("s")  # committed while the look was under way; it may have missed it
    empty.found_empty("s", Queue.PRIMARY, before)
    assert not empty.is_empty("s", Queue.PRIMARY)
    empty.found_empty("s", Queue.PRIMARY, empty.version("s"))
    assert empty.is_empty("s", Queue.PRIMARY)


def test_after_a_bus_outage_nothing_is_known_and_no_look_under_way_counts():
    empty = EmptyQueues(10)
    empty.found_empty("s", Queue.PRIMARY, empty.version("s"))
    under_way = empty.version("t")
    empty.forget_all()
    assert not empty.is_empty("s", Queue.PRIMARY)
    empty.found_empty("t", Queue.PRIMARY, under_way)
    assert not empty.is_empty("t", Queue.PRIMARY)


def test_off_with_no_lifetime_and_bounded_in_memory():
    off = EmptyQueues(0)
    off.found_empty("s", Queue.PRIMARY, off.version("s"))
    assert not off.is_empty("s", Queue.PRIMARY)
    clock = Clock()
    bounded = EmptyQueues(1, clock=clock, max_entries=3)
    for number in range(5):
        bounded.found_empty(f"s{number}", Queue.PRIMARY, bounded.version(f"s{number}"))
    assert [bounded.is_empty(f"s{n}", Queue.PRIMARY) for n in range(5)] == [True] * 3 + [False] * 2
    clock.now += 2  # the first three lapse, and make room
    bounded.found_empty("s9", Queue.PRIMARY, bounded.version("s9"))
    assert bounded.is_empty("s9", Queue.PRIMARY)


def hinted(db: Database, seconds: float = 30) -> JobService:
    return JobService(db, EventLog(db, MemoryBus()), empty_hint_seconds=seconds)


async def test_a_poll_after_this_process_submits_gets_the_job_at_once(db: Database, site):
    jobs = hinted(db)
    assert await jobs.claim(site, Queue.PRIMARY) == []
    job = (await jobs.submit(new_job(site))).job
    assert [found.ulid for found in await jobs.claim(site, Queue.PRIMARY)] == [job.ulid]
    assert await jobs.claim(site, Queue.ALTERNATE) != []


async def test_another_process_s_job_is_seen_when_its_notice_comes(db: Database, site):
    here, elsewhere = hinted(db), hinted(db)
    assert await here.claim(site, Queue.PRIMARY) == []
    job = (await elsewhere.submit(new_job(site))).job
    # Until the notice: the memory answers (this is the hint's whole point) ...
    assert await here.claim(site, Queue.PRIMARY) == []
    # ... but a claim that may be a retry looks at the store ...
    [found] = await here.claim(site, Queue.ALTERNATE, claim_id="retry-1")
    assert found.ulid == job.ulid
    # ... and the bus's notice of the new job ends it.
    here.on_notice(Committed(site, 1, new_jobs=True))
    assert [found.ulid for found in await here.claim(site, Queue.PRIMARY)] == [job.ulid]


async def test_a_missed_notice_costs_the_lifetime_at_most(db: Database, site):
    here, elsewhere = hinted(db, seconds=0.2), hinted(db)
    assert await here.claim(site, Queue.PRIMARY) == []
    job = (await elsewhere.submit(new_job(site))).job
    assert await here.claim(site, Queue.PRIMARY) == []
    await asyncio.sleep(0.25)
    assert [found.ulid for found in await here.claim(site, Queue.PRIMARY)] == [job.ulid]


async def test_a_bus_that_came_back_makes_every_poll_look_again(db: Database, site):
    here, elsewhere = hinted(db), hinted(db)
    assert await here.claim(site, Queue.PRIMARY) == []
    job = (await elsewhere.submit(new_job(site))).job
    here.on_notice(Resync())
    assert [found.ulid for found in await here.claim(site, Queue.PRIMARY)] == [job.ulid]


async def test_a_notice_without_a_new_job_changes_nothing(db: Database, site):
    here = hinted(db)
    assert await here.claim(site, Queue.PRIMARY) == []
    here.on_notice(Committed(site, 7))  # a message, a status: no job to claim
    assert here._empty.is_empty(site, Queue.PRIMARY)
