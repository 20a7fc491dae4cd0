"""Site presence on the real store, both backends: sightings flushed, changes of state
recorded once among several processes, and the overview's job counts and flags."""

import asyncio

from obsrelay.bus import MemoryBus
from obsrelay.domain.jobs import Deadlines, Queue, QueueState
from obsrelay.domain.lifecycle import RECEIVED
from obsrelay.domain.presence import Call, Standing, came_back, current_state
from obsrelay.services.jobs import JobService
from obsrelay.services.messages import MessageService
from obsrelay.services.presence import Presence
from obsrelay.services.sites import SiteRegistry
from obsrelay.services.stream import EventLog
from obsrelay.store.database import Database
from obsrelay.store.presence import Change
from tests.helpers import new_job

OFFLINE_MS = 60_000
DEADLINES = Deadlines(overdue_grace_ms=30_000, abandoned_after_ms=600_000)
T0 = 1_900_000_000_000  # a fixed "now" that no other test's rows come near


class Clock:
    def __init__(self, now_ms: int = T0) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def presence_on(db: Database, clock: Clock, bus: MemoryBus | None = None) -> Presence:
    return Presence(
        db,
        EventLog(db, bus or MemoryBus()),
        offline_after=OFFLINE_MS / 1000,
        deadlines=DEADLINES,
        clock_ms=clock,
    )


async def flush(presence: Presence, site: str) -> list[Change]:
    """The changes a flush recorded for `site` (the sweep covers every site stored)."""
    return [change for change in await presence.flush() if change.site == site]


def test_the_state_is_worked_out_from_the_last_sign_of_life():
    online = Standing(True, T0, T0 + 5_000)
    assert current_state(online, T0 + 30_000, OFFLINE_MS) == (True, T0)
    # The sweep has not run yet: offline anyway, since the last call plus the threshold.
    assert current_state(online, T0 + 70_000, OFFLINE_MS) == (False, T0 + 65_000)
    never_seen = Standing(False, T0, None)
    assert current_state(never_seen, T0 + 10**9, OFFLINE_MS) == (False, T0)
    assert came_back(never_seen, T0 + 1, OFFLINE_MS)
    assert came_back(Standing(False, T0, T0), T0 + 1, OFFLINE_MS)
    assert not came_back(online, T0 + 60_000, OFFLINE_MS)
    assert came_back(online, T0 + 65_001, OFFLINE_MS)  # silent too long, never swept


async def test_a_site_comes_online_goes_offline_and_comes_back(db: Database, site: str):
    await SiteRegistry(db).register(site, "operator")
    clock = Clock()
    presence = presence_on(db, clock)
    [view] = await presence.overview([site])
    assert (view.online, view.last_seen_ms) == (False, None)

    presence.seen(site, Call.POLL_PRIMARY)
    clock.now_ms += 3_000
    presence.seen(site, Call.MESSAGE)
    # Before the flush, this process's own sightings already show.
    [view] = await presence.overview([site])
    assert (view.online, view.since_ms, view.last_seen_ms) == (True, T0, T0 + 3_000)
    changes = await flush(presence, site)
    assert [(c.online, c.since_ms) for c in changes] == [(True, T0)]

    clock.now_ms += 5_000
    presence.seen(site, Call.poll(Queue.ALTERNATE))
    assert await flush(presence, site) == []  # still online: no change
    [view] = await presence.overview([site])
    assert view.calls == {
        Call.POLL_PRIMARY: T0,
        Call.POLL_ALTERNATE: T0 + 8_000,
        Call.STATUS: None,
        Call.MESSAGE: T0 + 3_000,
        Call.EVENT: None,
    }

    clock.now_ms = T0 + 8_000 + OFFLINE_MS + 1
    changes = await flush(presence, site)
    assert [(c.online, c.since_ms) for c in changes] == [(False, T0 + 8_000 + OFFLINE_MS)]
    [view] = await presence.overview([site])
    assert (view.online, view.since_ms) == (False, T0 + 8_000 + OFFLINE_MS)

    clock.now_ms += 120_000
    presence.seen(site, Call.STATUS)
    changes = await flush(presence, site)
    assert [(c.online, c.since_ms) for c in changes] == [(True, clock.now_ms)]


async def test_processes_agree_and_each_change_is_recorded_once(db: Database, site: str):
    await SiteRegistry(db).register(site, "operator")
    clock = Clock()
    first, second = presence_on(db, clock), presence_on(db, clock)
    first.seen(site, Call.POLL_PRIMARY)
    second.seen(site, Call.POLL_PRIMARY)
    came = await asyncio.gather(flush(first, site), flush(second, site))
    assert sorted(len(changes) for changes in came) == [0, 1]
    # The other process sees it from the store.
    third = presence_on(db, clock)
    [view] = await third.overview([site])
    assert (view.online, view.since_ms) == (True, T0)

    clock.now_ms += OFFLINE_MS + 10_000
    went = await asyncio.gather(flush(first, site), flush(second, site), flush(third, site))
    assert sorted(len(changes) for changes in went) == [0, 0, 1]


async def test_a_name_that_is_not_registered_is_not_recorded(db: Database, site: str):
    clock = Clock()
    presence = presence_on(db, clock)
    presence.seen(site, Call.POLL_PRIMARY)
    assert await flush(presence, site) == []
    await SiteRegistry(db).register(site, "operator")
    [view] = await presence.overview([site])
    assert (view.online, view.last_seen_ms) == (False, None)


async def test_the_overview_counts_and_flags_the_sites_jobs(db: Database, site: str):
    await SiteRegistry(db).register(site, "operator")
    clock = Clock()
    events = EventLog(db, MemoryBus())
    jobs = JobService(db, events, clock_ms=clock)
    presence = Presence(db, events, offline_after=60, deadlines=DEADLINES, clock_ms=clock)
    first = (await jobs.submit(new_job(site))).job
    clock.now_ms += 1_000
    running = (await jobs.submit(new_job(site))).job
    taken = await jobs.claim(site, Queue.PRIMARY)
    assert {job.ulid for job in taken} == {first.ulid, running.ulid}
    await jobs.report_status(site, running.ulid, Queue.PRIMARY, "EXPOSING", 10)
    clock.now_ms += 1_000
    waiting = (await jobs.submit(new_job(site))).job
    done = (await jobs.submit(new_job(site))).job
    await jobs.report_status(site, done.ulid, Queue.PRIMARY, "COMPLETE")
    await MessageService(db, events, clock=lambda: clock.now_ms / 1000).post(
        site, "dome closed: rain", "error", None
    )

    [view] = await presence.overview([site])
    assert (view.jobs.unread, view.jobs.oldest_unread_ms) == (1, waiting.created_ms)
    assert (view.jobs.received, view.jobs.running) == (1, 1)
    assert (view.jobs.overdue, view.jobs.abandoned) == ([], [])
    assert view.last_message == ("error", clock.now_ms / 1000)

    # 10 s promised, plus 30 s of grace: then overdue. The received one, after 10 min.
    clock.now_ms += 39_000
    [view] = await presence.overview([site])
    assert view.jobs.overdue == []
    clock.now_ms += 2_000
    [view] = await presence.overview([site])
    assert view.jobs.overdue == [running.ulid]
    clock.now_ms = T0 + 1_000 + 600_001  # the claim, then ten minutes of silence
    [view] = await presence.overview([site])
    assert view.jobs.abandoned == [first.ulid]
    # Flagging changes nothing: the job is still received, and is not delivered again.
    assert [job.ulid for job in await jobs.claim(site, Queue.PRIMARY)] == [waiting.ulid]
    job, _ = await jobs.get(site, first.ulid)
    assert job.primary.status == RECEIVED


def test_a_job_with_no_estimate_is_never_overdue():
    state = QueueState("EXPOSING", -1, T0)
    assert DEADLINES.flag(state, T0 + 10**9) is None
    assert DEADLINES.flag(QueueState("COMPLETE", 10, T0), T0 + 10**9) is None
    assert DEADLINES.flag(QueueState("UNREAD", 10, T0), T0 + 10**9) is None


async def test_a_sighting_being_flushed_while_the_overview_reads_is_not_lost(
    db: Database, site: str
):
    clock = Clock()
    presence = presence_on(db, clock)
    await SiteRegistry(db).register(site, "operator")
    for step in range(30):
        clock.now_ms += 1_000
        presence.seen(site, Call.STATUS if step % 2 else Call.POLL_PRIMARY)
        # The flush commits and forgets its sightings while the overview reads the store:
        # the overview shows them from one or the other.
        _, [view] = await asyncio.gather(presence.flush(), presence.overview([site]))
        assert view.calls[Call.STATUS if step % 2 else Call.POLL_PRIMARY] == clock.now_ms, step
