"""Site presence: this process's sightings of sites, kept in memory and written to the
store every few seconds, the overview of every site that the API and the console
show (online or not, jobs waiting and held, the last message), and the alerts of
sites gone offline or back and of jobs overdue or abandoned.

A site call costs a dictionary update here, never a database write: the flush writes
one row per site seen since the last one. Each process flushes its own sightings and
sweeps for sites gone silent; the store's row locks let exactly one of them record
each change of state, and that one announces it on the native stream (topic
"presence"), live, to every process's subscribers. The rules are domain/presence.py's.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from obsrelay.domain.ids import ulid_floor
from obsrelay.domain.jobs import Deadlines, Flag, Job, Queue
from obsrelay.domain.lifecycle import RECEIVED
from obsrelay.domain.presence import Call, Standing, came_back, current_state
from obsrelay.services.alerts import Alerts
from obsrelay.services.stream import TOPIC_PRESENCE, EventLog
from obsrelay.store import alerts as alert_queries
from obsrelay.store import jobs as job_queries
from obsrelay.store import presence as queries
from obsrelay.store import sites as site_queries
from obsrelay.store.database import Database, DatabaseUnavailable

log = logging.getLogger("obsrelay.presence")

# A job still held a week after it was submitted is no longer counted or flagged:
# nothing but the site can finish it, and an old flag nobody can clear is noise.
HELD_WINDOW_MS = 7 * 86_400_000
# Sightings of more sites than this between two flushes are dropped (a flood of names).
_MAX_PENDING_SITES = 10_000
_LONGEST_FLUSH_SECONDS = 2.0
_FLUSHES_PER_JOB_CHECK = 5
# Alerts taken on are remembered this long: a site offline for longer is alerted again.
ALERT_MEMORY_MS = 30 * 86_400_000


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class JobCounts:
    """A site's jobs on the primary queue: waiting for it, and held by it."""

    unread: int = 0
    oldest_unread_ms: int | None = None
    received: int = 0
    running: int = 0
    overdue: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SiteView:
    """What an operator sees of one site."""

    site: str
    online: bool
    since_ms: int
    last_seen_ms: int | None
    calls: dict[Call, int | None]
    jobs: JobCounts
    last_message: tuple[str, float] | None


class Presence:
    """This process's sightings, their flush and sweep, and the overview of the sites."""

    def __init__(
        self,
        db: Database,
        events: EventLog,
        *,
        offline_after: float,
        deadlines: Deadlines,
        still_connected: Callable[[], Iterable[tuple[str, Call]]] = lambda: (),
        clock_ms: Callable[[], int] = wall_clock_ms,
        alerts: Alerts | None = None,
        alert_offline_hold: float = 60.0,
    ) -> None:
        self._db = db
        self._events = events
        self.offline_after_ms = int(offline_after * 1000)
        self.deadlines = deadlines
        self._alerts = alerts or Alerts(None)
        # A site must stay offline this much longer before it is alerted: an absence
        # shorter than that (a site flapping around the threshold) sends nothing.
        self._offline_hold_ms = int(alert_offline_hold * 1000)
        self._flushes = 0
        # A waiting long-poll is a site connected now: it counts at every flush.
        self._still_connected = still_connected
        self._clock_ms = clock_ms
        self.flush_seconds = min(_LONGEST_FLUSH_SECONDS, offline_after / 4)
        self._pending: dict[str, queries.Sightings] = {}
        # The sightings a flush is writing: still this process's news until it commits.
        self._flushing: dict[str, queries.Sightings] = {}
        self._runner: asyncio.Task[None] | None = None

    def seen(self, site: str, call: Call) -> None:
        """Notes a sign of life of `site` now. No I/O: the flush writes it."""
        now = self._clock_ms()
        pending = self._pending.get(site)
        if pending is None:
            if len(self._pending) >= _MAX_PENDING_SITES:
                return
            self._pending[site] = queries.Sightings(now, {call: now})
        else:
            pending.calls[call] = now

    async def flush(self) -> list[queries.Change]:
        """Writes the sightings since the last flush, marks offline the sites gone silent,
        and announces each change this process recorded. Returns those changes."""
        for site, call in self._still_connected():
            self.seen(site, call)
        pending, self._pending = self._pending, {}
        self._flushing = pending
        try:
            changes, offline, back = await self._db.write(
                lambda conn: self._record(conn, pending, self._clock_ms())
            )
        except BaseException:
            self._restore(pending)
            raise
        finally:
            self._flushing = {}
        for change in changes:
            await self._events.publish_live(
                change.site, TOPIC_PRESENCE, {"online": change.online, "since_ms": change.since_ms}
            )
            log.info("site %s is %s", change.site, "online" if change.online else "offline")
        for change in offline:
            self._alerts.site_offline(change.site, change.since_ms, change.last_seen_ms)
        for change in back:
            assert change.was_since_ms is not None
            self._alerts.site_online(change.site, change.since_ms, change.was_since_ms)
        return changes

    def _record(
        self, conn: sa.Connection, pending: dict[str, queries.Sightings], now_ms: int
    ) -> tuple[list[queries.Change], list[queries.Change], list[queries.Change]]:
        """(the changes recorded, the offline alerts and the back-online alerts this
        process takes on to send)."""
        came = queries.record(conn, pending, self.offline_after_ms) if pending else []
        changes = came + queries.mark_silent(conn, now_ms, self.offline_after_ms)
        offline, back = [], []
        if self._alerts.wants("offline"):
            for change in queries.offline_since_before(conn, now_ms - self._offline_hold_ms):
                if alert_queries.take(conn, f"offline:{change.site}:{change.since_ms}", now_ms):
                    offline.append(change)
        if self._alerts.wants("online"):
            # "Back online" only after an "offline" alert for that absence.
            back = [
                change
                for change in came
                if change.was_since_ms is not None
                and alert_queries.taken(conn, f"offline:{change.site}:{change.was_since_ms}")
            ]
        return changes, offline, back

    async def check_jobs(self) -> None:
        """Alerts the jobs newly overdue or abandoned, each once among the processes."""
        wanted = [event for event in (Flag.OVERDUE, Flag.ABANDONED) if self._alerts.wants(event)]
        if not wanted:
            return
        now = self._clock_ms()

        def take(conn: sa.Connection) -> list[tuple[Flag, Job]]:
            alert_queries.forget_before(conn, now - ALERT_MEMORY_MS)
            taken = []
            for held in queries.held_jobs(conn, None, ulid_floor(now - HELD_WINDOW_MS)):
                flag = self.deadlines.flag(held.state, now)
                if flag in wanted and alert_queries.take(conn, f"{flag}:{held.ulid}", now):
                    job = job_queries.get_job(conn, held.ulid)
                    if job is not None:
                        taken.append((flag, job))
            return taken

        for flag, job in await self._db.write(take):
            self._alerts.job_flagged(flag, job, Queue.PRIMARY)

    def _restore(self, unwritten: dict[str, queries.Sightings]) -> None:
        """Keeps sightings a failed flush did not write, merged with the newer ones."""
        for site, old in unwritten.items():
            merged = _merged(old, self._pending.get(site))
            assert merged is not None
            self._pending[site] = merged

    async def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._flush_forever())

    async def close(self) -> None:
        """Stops flushing, after a last flush of what this process saw."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        with contextlib.suppress(Exception):
            await self.flush()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            self._flushes += 1
            try:
                await self.flush()
                if self._flushes % _FLUSHES_PER_JOB_CHECK == 0:
                    await self.check_jobs()
            except DatabaseUnavailable:
                pass  # the database logs its outage once; the sightings wait in memory
            except Exception:
                log.exception("writing site presence failed; retrying")

    async def overview(self, names: list[str] | None = None) -> list[SiteView]:
        """Every registered site (or those of `names` that are), in name order."""
        now = self._clock_ms()
        floor = ulid_floor(now - HELD_WINDOW_MS)
        # Taken before the store is read: a flush that commits during the read and then
        # forgets its sightings must not take them out of this view as well.
        flushing, pending = self._flushing, dict(self._pending)

        def read(conn: sa.Connection) -> list[SiteView]:
            registered = site_queries.list_sites(conn, names)
            wanted = [row.name for row in registered]
            stored = queries.presence_of(conn, wanted)
            unread = queries.unread_summary(conn, wanted)
            held: dict[str, list[queries.HeldJob]] = {}
            for job in queries.held_jobs(conn, wanted, floor):
                held.setdefault(job.site, []).append(job)
            messages = queries.last_messages(conn, wanted)
            return [
                self._view(
                    row.name,
                    _merged(flushing.get(row.name), pending.get(row.name)),
                    stored.get(row.name),
                    row.created_ms,
                    unread.get(row.name),
                    held.get(row.name, []),
                    messages.get(row.name),
                    now,
                )
                for row in registered
            ]

        return await self._db.read(read)

    def _view(
        self,
        site: str,
        pending: queries.Sightings | None,
        stored: queries.PresenceRow | None,
        created_ms: int,
        unread: tuple[int, int] | None,
        held: list[queries.HeldJob],
        last_message: tuple[str, float] | None,
        now_ms: int,
    ) -> SiteView:
        standing = stored.standing if stored else Standing(False, created_ms, None)
        calls = dict(stored.calls) if stored else dict.fromkeys(Call)
        # What this process saw since its last flush (`pending`, with what a flush was
        # writing) is newer than what the store says.
        if pending is not None:
            for call, at in pending.calls.items():
                calls[call] = max(at, calls[call] or 0)
            last = max(pending.last_ms, standing.last_seen_ms or 0)
            back = came_back(standing, pending.first_ms, self.offline_after_ms)
            standing = Standing(True, pending.first_ms if back else standing.since_ms, last)
        online, since = current_state(standing, now_ms, self.offline_after_ms)
        flags = [(job.ulid, self.deadlines.flag(job.state, now_ms)) for job in held]
        received = sum(1 for job in held if job.state.status == RECEIVED)
        return SiteView(
            site=site,
            online=online,
            since_ms=since,
            last_seen_ms=standing.last_seen_ms,
            calls=calls,
            jobs=JobCounts(
                unread=unread[0] if unread else 0,
                oldest_unread_ms=unread[1] if unread else None,
                received=received,
                running=len(held) - received,
                overdue=[ulid for ulid, flag in flags if flag is Flag.OVERDUE],
                abandoned=[ulid for ulid, flag in flags if flag is Flag.ABANDONED],
            ),
            last_message=last_message,
        )


def _merged(
    older: queries.Sightings | None, newer: queries.Sightings | None
) -> queries.Sightings | None:
    """One site's sightings of two periods as one: the first, and each call's last."""
    if older is None or newer is None:
        return older or newer
    calls = dict(older.calls)
    for call, at in newer.calls.items():
        calls[call] = max(at, calls.get(call, at))
    return queries.Sightings(min(older.first_ms, newer.first_ms), calls)
