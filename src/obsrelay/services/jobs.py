"""The job queue: submit, claim exactly once, report status, cancel, expire, read.

Both wire formats (the compatible /jobs API and /api/v1) call these methods, so every
rule lives here once. Each method is one transaction on the store.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from obsrelay.domain import jobs as rules
from obsrelay.domain.errors import NotFound
from obsrelay.domain.ids import MonotonicUlids, ulid_floor
from obsrelay.domain.jobs import (
    CANCELLED,
    EXPIRED,
    RECEIVED,
    UNKNOWN_SECONDS,
    UNREAD,
    HistoryEntry,
    Identity,
    Job,
    NewJob,
    Queue,
    QueueState,
)
from obsrelay.store import jobs as queries
from obsrelay.store.database import Database

SOURCE_SITE = "site"
SOURCE_EXPIRY = "expiry"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Submitted:
    """A new job, and the earlier jobs that it cancelled (for `cancel_all_commands`)."""

    job: Job
    cancelled: list[Job] = field(default_factory=list)


@dataclass(frozen=True)
class JobPage:
    """One page of a listing; `next_after` continues it, None at the end."""

    jobs: list[Job]
    next_after: str | None


class JobService:
    """The job queue's rules over one database."""

    def __init__(
        self,
        db: Database,
        *,
        expiry_seconds: float = 86400.0,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._db = db
        self._expiry_ms = int(expiry_seconds * 1000)
        self._clock_ms = clock_ms
        self._ulids = MonotonicUlids()

    def _deliverable_floor(self, now_ms: int) -> str:
        """Jobs older than this ULID have expired and are never delivered."""
        return ulid_floor(now_ms - self._expiry_ms) if self._expiry_ms else ulid_floor(0)

    async def submit(self, new: NewJob) -> Submitted:
        """Stores a new UNREAD job; `cancel_all_commands` also cancels earlier open jobs."""
        now = self._clock_ms()
        unread = QueueState(UNREAD, UNKNOWN_SECONDS, now)
        job = Job(
            ulid=self._ulids.new(now),
            site=new.site,
            created_ms=now,
            device_type=new.device_type,
            device_instance=new.device_instance,
            action=new.action,
            required_params=new.required_params,
            optional_params=new.optional_params,
            user=new.user,
            primary=unread,
            alternate=unread,
        )
        source = f"user:{new.user.user_id}"
        history = [
            (job.ulid, HistoryEntry(now, queue, UNREAD, UNKNOWN_SECONDS, source)) for queue in Queue
        ]
        cancelled: list[Job] = []
        async with self._db.write() as conn:
            await queries.insert_job(conn, job)
            if new.is_cancel_all:
                changed = await queries.cancel_open_before(conn, new.site, job.ulid, now)
                cancel_source = f"cancel_all:{job.ulid}"
                history += [
                    (ulid, HistoryEntry(now, queue, CANCELLED, UNKNOWN_SECONDS, cancel_source))
                    for ulid, queues in changed.items()
                    for queue in queues
                ]
                cancelled = await queries.get_jobs(conn, list(changed))
            await queries.insert_history(conn, history)
        return Submitted(job, cancelled)

    async def claim(self, site: str, queue: Queue, limit: int | None = None) -> list[Job]:
        """Marks `site`'s unread jobs on `queue` RECEIVED and returns them, oldest first."""
        now = self._clock_ms()
        floor = self._deliverable_floor(now)
        # Most polls find nothing: answer those from a read, without taking the write lock.
        async with self._db.read() as conn:
            if not await queries.has_unread(conn, site, queue, floor):
                return []
        async with self._db.write() as conn:
            claimed = await queries.claim_unread(
                conn, site, queue, floor_ulid=floor, now_ms=now, limit=limit
            )
            await queries.insert_history(
                conn,
                (
                    (job.ulid, HistoryEntry(now, queue, RECEIVED, UNKNOWN_SECONDS, SOURCE_SITE))
                    for job in claimed
                ),
            )
        return claimed

    async def report_status(
        self,
        site: str,
        ulid: str,
        queue: Queue,
        status: str,
        seconds_until_complete: int = UNKNOWN_SECONDS,
        source: str = SOURCE_SITE,
    ) -> Job:
        """Sets `queue`'s status of one job; a finished job refuses any other status."""
        status = rules.normalize_status(status)
        now = self._clock_ms()
        async with self._db.write() as conn:
            job = await self._get_for_update(conn, site, ulid)
            if not rules.check_status_change(ulid, queue, job.state(queue).status, status):
                return job
            job = await queries.set_queue_state(
                conn, ulid, queue, QueueState(status, seconds_until_complete, now)
            )
            await queries.insert_history(
                conn, [(ulid, HistoryEntry(now, queue, status, seconds_until_complete, source))]
            )
        return job

    async def cancel(self, site: str, ulid: str, by: Identity) -> Job:
        """Cancels a job that no site has received yet (on every queue still UNREAD)."""
        now = self._clock_ms()
        async with self._db.write() as conn:
            job = await self._get_for_update(conn, site, ulid)
            source = f"user:{by.user_id}"
            for queue in rules.queues_to_cancel(job):
                job = await queries.set_queue_state(
                    conn, ulid, queue, QueueState(CANCELLED, UNKNOWN_SECONDS, now)
                )
                await queries.insert_history(
                    conn, [(ulid, HistoryEntry(now, queue, CANCELLED, UNKNOWN_SECONDS, source))]
                )
        return job

    async def expire_stale(self, batch: int = 500) -> int:
        """Marks EXPIRED up to `batch` jobs per queue left UNREAD past the expiry time.

        Bounded work per call; safe to run from several processes at once.
        """
        if not self._expiry_ms:
            return 0
        now = self._clock_ms()
        floor = self._deliverable_floor(now)
        expired = 0
        for queue in Queue:
            async with self._db.write() as conn:
                ulids = await queries.expire_unread_before(conn, queue, floor, now, batch)
                await queries.insert_history(
                    conn,
                    (
                        (ulid, HistoryEntry(now, queue, EXPIRED, UNKNOWN_SECONDS, SOURCE_EXPIRY))
                        for ulid in ulids
                    ),
                )
            expired += len(ulids)
        return expired

    async def recent(self, site: str, time_range_ms: int) -> list[Job]:
        """`site`'s jobs created in the last `time_range_ms`, oldest first."""
        since = self._clock_ms() - time_range_ms
        async with self._db.read() as conn:
            return await queries.list_jobs(
                conn, site, floor_ulid=ulid_floor(since), created_since_ms=since
            )

    async def page(
        self,
        site: str,
        *,
        status: str | None = None,
        queue: Queue = Queue.PRIMARY,
        after: str | None = None,
        newest_first: bool = False,
        limit: int = 100,
    ) -> JobPage:
        """One page of `site`'s jobs, optionally only those with `status` on `queue`."""
        async with self._db.read() as conn:
            found = await queries.list_jobs(
                conn,
                site,
                status=status,
                queue=queue,
                after=after,
                newest_first=newest_first,
                limit=limit + 1,
            )
        more = len(found) > limit
        found = found[:limit]
        return JobPage(found, found[-1].ulid if more else None)

    async def get(self, site: str, ulid: str) -> tuple[Job, list[HistoryEntry]]:
        """One job with its whole status history, oldest change first."""
        async with self._db.read() as conn:
            job = await queries.get_job(conn, ulid)
            if job is None or job.site != site:
                raise NotFound(f"There is no job {ulid} at site {site}.")
            return job, await queries.get_history(conn, ulid)

    async def _get_for_update(self, conn: AsyncConnection, site: str, ulid: str) -> Job:
        job = await queries.get_job(conn, ulid, for_update=True)
        if job is None or job.site != site:
            raise NotFound(f"There is no job {ulid} at site {site}.")
        return job
