"""The job queue: submit, claim exactly once, report status, cancel, expire, read.

Both wire formats (the compatible /jobs API and /api/v1) call these methods, so every
rule lives here once. Each method runs one transaction on the store: the function it
hands to `Database.write` or `Database.read` holds the whole of it.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import sqlalchemy as sa

from obsrelay.bus import Committed, Notice, Resync
from obsrelay.domain import jobs as rules
from obsrelay.domain.errors import Conflict, NotFound
from obsrelay.domain.ids import MonotonicUlids, ulid_floor
from obsrelay.domain.jobs import (
    UNKNOWN_SECONDS,
    HistoryEntry,
    Identity,
    Job,
    NewJob,
    Queue,
    QueueState,
)
from obsrelay.domain.lifecycle import (
    CANCELLED,
    EXPIRED,
    FAILED,
    RECEIVED,
    UNREAD,
    Cause,
    may_change,
)
from obsrelay.metrics import Metrics
from obsrelay.services.alerts import Alerts
from obsrelay.services.empty_queues import EmptyQueues
from obsrelay.services.stream import TOPIC_JOB, EventLog, StreamEvent, encode
from obsrelay.store import jobs as queries
from obsrelay.store.database import Database
from obsrelay.store.job_writes import JobWrites

T = TypeVar("T")
log = logging.getLogger("obsrelay.jobs")

SOURCE_SITE = "site"
SOURCE_EXPIRY = "expiry"
CLAIM_MEMORY_MS = 86_400_000


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Submitted:
    """A new job, and the earlier jobs that it cancelled (for `cancel_all_commands`)."""

    job: Job
    cancelled: list[Job] = field(default_factory=list)
    events: list[StreamEvent] = field(default_factory=list)


@dataclass(frozen=True)
class JobPage:
    """One page of a listing; `next_after` continues it, None at the end."""

    jobs: list[Job]
    next_after: str | None


def _event_data(job: Job) -> str:
    """A job's event on its site's stream: the job as it is now."""
    return encode(job.to_data())


def _job_events(conn: sa.Connection, jobs: list[Job], now_ms: int) -> list[StreamEvent]:
    """Adds each changed job, as it is now, to its site's datastream log."""
    by_site: dict[str, list[Job]] = {}
    for job in jobs:
        by_site.setdefault(job.site, []).append(job)
    return [
        event
        for site, changed in by_site.items()
        for event in EventLog.append(
            conn, site, TOPIC_JOB, [_event_data(job) for job in changed], now_ms
        )
    ]


def _get_at_site(conn: sa.Connection, site: str, ulid: str, *, for_update: bool) -> Job:
    job = queries.get_job(conn, ulid, for_update=for_update)
    if job is None or job.site != site:
        raise NotFound(_not_at_site(site, ulid))
    return job


def _not_at_site(site: str, ulid: str) -> str:
    return f"There is no job {ulid} at site {site}."


def _no_answer(jobs: list[Job]) -> None:
    return None


def _would_change(job: Job, site: str, queue: Queue, status: str) -> bool:
    """Whether the site's report of `status` on `queue` would change `job`, as it is."""
    if job.site != site:
        return False
    try:
        return may_change(job.ulid, queue, job.state(queue).status, Cause.REPORT, status)
    except Conflict:
        return False


class JobService:
    """The job queue's rules over one database."""

    def __init__(
        self,
        db: Database,
        events: EventLog,
        *,
        expiry_seconds: float = 86400.0,
        clock_ms: Callable[[], int] = wall_clock_ms,
        metrics: Metrics | None = None,
        alerts: Alerts | None = None,
        empty_hint_seconds: float = 0.0,
    ) -> None:
        """`empty_hint_seconds`: how long a queue found empty answers polls from memory
        (services/empty_queues.py); 0, the default, always looks at the store."""
        self._db = db
        self._events = events
        self._metrics = metrics or Metrics()
        self._alerts = alerts or Alerts(None)
        self._expiry_ms = int(expiry_seconds * 1000)
        self._clock_ms = clock_ms
        self._ulids = MonotonicUlids()
        self._empty = EmptyQueues(empty_hint_seconds)
        # The queues whose last claim here took all it asked for, so that more may wait:
        # their next claim goes to the store at once, without a look first.
        self._backlogs: set[tuple[str, Queue]] = set()
        self._writes = JobWrites(db, TOPIC_JOB, event_data=_event_data)

    def on_notice(self, notice: Notice) -> None:
        """The bus handler: another process's new job (or the bus came back)."""
        if isinstance(notice, Resync):
            self._empty.forget_all()
        elif isinstance(notice, Committed) and notice.new_jobs:
            self._empty.new_jobs(notice.site)

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

        def cancel_all(conn: sa.Connection) -> Submitted:
            queries.insert_job(conn, job)
            cancelled = queries.cancel_open_before(
                conn,
                new.site,
                job.ulid,
                QueueState(CANCELLED, UNKNOWN_SECONDS, now),
                f"cancel_all:{job.ulid}",
            )
            return Submitted(job, cancelled, _job_events(conn, [*cancelled, job], now))

        # The job's first history entries (UNREAD on both queues) are its own row.
        if new.is_cancel_all:
            submitted = await self._db.write(cancel_all)
        else:
            data = _event_data(job)
            seq = await self._writes.insert(job, data)
            submitted = Submitted(job, events=[StreamEvent(job.site, TOPIC_JOB, data, seq)])
        self._empty.new_jobs(job.site)  # before anyone hears of it, here or elsewhere
        await self._events.announce(submitted.events, new_jobs_at=[job.site])
        self._metrics.jobs_submitted.labels(job.site).inc()
        for queue in Queue:
            self._count_finished([job for job in submitted.cancelled], queue, now)
        return submitted

    async def claim(
        self,
        site: str,
        queue: Queue,
        limit: int | None = None,
        claim_id: str | None = None,
    ) -> list[Job]:
        """Marks `site`'s unread jobs on `queue` RECEIVED and returns them, oldest first."""
        claimed, _ = await self.claim_and_answer(site, queue, _no_answer, limit, claim_id)
        return claimed

    async def claim_and_answer(
        self,
        site: str,
        queue: Queue,
        answer: Callable[[list[Job]], T],
        limit: int | None = None,
        claim_id: str | None = None,
    ) -> tuple[list[Job], T]:
        """Marks `site`'s unread jobs on `queue` RECEIVED; returns them, oldest first, with
        `answer(jobs)`: what the client is sent.

        The answer is made inside the claiming transaction, so if it cannot be made the
        claim is rolled back: a job is never marked RECEIVED and then not sent.
        With `claim_id`, a retry of a claim whose answer was lost returns the jobs the
        first attempt took (and takes no more): a job is never lost between the two.
        """
        # Most polls find nothing: answer those from memory when this queue was just
        # found empty, else from a read, without a write transaction. A claim that may
        # be a retry (`claim_id`) always reads: its first attempt may have taken jobs.
        # Where the last claim took all it asked for (a backlog), more jobs may wait:
        # the claim goes to the store without the look.
        if claim_id is None and self._empty.is_empty(site, queue):
            return [], answer([])
        now = self._clock_ms()
        floor = self._deliverable_floor(now)

        async def probe() -> tuple[list[Job], bool]:
            if claim_id is not None:
                taken = await self._db.read(
                    lambda conn: queries.jobs_of_claim(conn, site, queue, claim_id)
                )
                if taken:
                    return taken, False
            if (site, queue) in self._backlogs:
                return [], True
            found = await self._db.fetch(
                queries.UNREAD_PROBES[queue], {"site": site, "floor": floor}
            )
            return [], bool(found)

        version = self._empty.version(site)
        taken, unread = await probe()
        if taken or not unread:
            if not taken:
                self._empty.found_empty(site, queue, version)
            return taken, answer(taken)

        def answer_or_log(claimed: list[Job]) -> T:
            try:
                return answer(claimed)
            except Exception:
                log.exception(
                    "cannot send jobs %s of %s; they stay unread",
                    ", ".join(job.ulid for job in claimed),
                    site,
                )
                raise

        received = await self._writes.claim(
            site,
            queue,
            QueueState(RECEIVED, UNKNOWN_SECONDS, now),
            SOURCE_SITE,
            answer_or_log,
            floor_ulid=floor,
            limit=limit,
            claim_id=claim_id,
        )
        claimed, answered = received.jobs, received.answer
        if limit and len(claimed) == limit:  # (a limit of 0 takes nothing, and tells nothing)
            self._backlogs.add((site, queue))
        else:  # the next poll looks first, and may find the queue empty
            self._backlogs.discard((site, queue))
        await self._events.announce(
            EventLog.numbered(site, TOPIC_JOB, received.data, received.first_seq)
        )
        if claimed:
            self._metrics.jobs_claimed.labels(site, queue).inc(len(claimed))
            waited = self._metrics.claim_wait_seconds.labels(queue)
            for job in claimed:
                waited.observe(max(0, now - job.created_ms) / 1000)
        return claimed, answered

    async def report_status(
        self,
        site: str,
        ulid: str,
        queue: Queue,
        status: object,
        seconds_until_complete: int = UNKNOWN_SECONDS,
        source: str = SOURCE_SITE,
    ) -> Job:
        """Sets `queue`'s status of one job; a finished job refuses any other status.

        `status` is what the site sent; it is checked and normalized here.
        """
        new_status = rules.normalize_status(status)
        now = self._clock_ms()
        state = QueueState(new_status, seconds_until_complete, now)
        # The job as this process last saw it, if the report would change that: the
        # write stores the change only if the job is still so. Anything else (a refusal,
        # a repeated final status, a job changed since) is decided on a read.
        read = self._writes.remembered(ulid)
        if read is not None and not _would_change(read, site, queue, new_status):
            read = None
        while True:
            if read is None:
                read = await self._writes.read(ulid)
                if read is None or read.site != site:
                    raise NotFound(_not_at_site(site, ulid))
                if not may_change(ulid, queue, read.state(queue).status, Cause.REPORT, new_status):
                    job, events = read, []
                    break
            job = read.with_state(queue, state)
            data = _event_data(job)
            seq = await self._writes.change_if_unchanged(
                read, queue, Cause.REPORT, state, source, data
            )
            if seq is not None:
                events = [StreamEvent(site, TOPIC_JOB, data, seq)]
                break
            read = None  # the job changed since it was read: decide again
        await self._events.announce(events)
        self._count_finished([job], queue, now)
        if events and job.state(queue).status == FAILED:
            self._alerts.job_failed(job, queue)
        return job

    async def cancel(self, site: str, ulid: str, by: Identity) -> Job:
        """Cancels a job that no site has received yet (on every queue still UNREAD)."""
        now = self._clock_ms()
        source = f"user:{by.user_id}"

        def cancel(conn: sa.Connection) -> tuple[Job, list[StreamEvent]]:
            job = _get_at_site(conn, site, ulid, for_update=True)
            queues = rules.queues_to_cancel(job)
            for queue in queues:
                state = QueueState(CANCELLED, UNKNOWN_SECONDS, now)
                job = queries.change_one(conn, ulid, queue, Cause.CANCEL, state, source)
            return job, _job_events(conn, [job], now) if queues else []

        job, events = await self._db.write(cancel)
        await self._events.announce(events)
        for queue in Queue:
            self._count_finished([job], queue, now)
        return job

    async def expire_stale(self, batch: int = 500) -> int:
        """Marks EXPIRED up to `batch` jobs per queue left UNREAD past the expiry time,
        and forgets the claims too old to be retried.

        Bounded work per call; safe to run from several processes at once.
        """
        now = self._clock_ms()
        floor = self._deliverable_floor(now)

        def expire(conn: sa.Connection) -> list[StreamEvent]:
            # A client retries a lost claim until the server answers: remember it as long
            # as a job may wait to be delivered, and at least a day.
            queries.forget_claims_before(conn, now - max(self._expiry_ms, CLAIM_MEMORY_MS))
            if not self._expiry_ms:
                return []
            events = []
            expired = QueueState(EXPIRED, UNKNOWN_SECONDS, now)
            for queue in Queue:
                changed = queries.expire_unread_before(
                    conn, queue, floor, expired, SOURCE_EXPIRY, batch
                )
                expired_on[queue] = changed
                events += _job_events(conn, changed, now)
            return events

        expired_on: dict[Queue, list[Job]] = {}
        events = await self._db.write(expire)
        await self._events.announce(events)
        for queue, changed in expired_on.items():
            self._count_finished(changed, queue, now)
        return len(events)

    def _count_finished(self, jobs: list[Job], queue: Queue, now_ms: int) -> None:
        """Counts the jobs whose `queue` reached a final status at `now_ms` (this change)."""
        for job in jobs:
            state = job.state(queue)
            if state.is_final and state.updated_ms == now_ms:
                self._metrics.jobs_finished.labels(job.site, queue, state.status).inc()

    async def recent(self, site: str, time_range_ms: int) -> list[Job]:
        """`site`'s jobs created in the last `time_range_ms`, oldest first."""
        since = self._clock_ms() - time_range_ms
        return await self._db.read(
            lambda conn: queries.list_jobs(
                conn, site, floor_ulid=ulid_floor(since), created_since_ms=since
            )
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
        found = await self._db.read(
            lambda conn: queries.list_jobs(
                conn,
                site,
                status=status,
                queue=queue,
                after=after,
                newest_first=newest_first,
                limit=limit + 1,
            )
        )
        more = len(found) > limit
        found = found[:limit]
        return JobPage(found, found[-1].ulid if more else None)

    async def find(self, ulid: str) -> tuple[Job, list[HistoryEntry]]:
        """One job, at whatever site, with its whole status history."""

        def read(conn: sa.Connection) -> tuple[Job, list[HistoryEntry]]:
            job = queries.get_job(conn, ulid)
            if job is None:
                raise NotFound(f"There is no job {ulid}.")
            return job, queries.whole_history(conn, job)

        return await self._db.read(read)

    async def get(self, site: str, ulid: str) -> tuple[Job, list[HistoryEntry]]:
        """One job with its whole status history, oldest change first."""

        def read(conn: sa.Connection) -> tuple[Job, list[HistoryEntry]]:
            job = _get_at_site(conn, site, ulid, for_update=False)
            return job, queries.whole_history(conn, job)

        return await self._db.read(read)
