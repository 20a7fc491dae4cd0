"""The job queue's hot writes, each in as few round trips as its backend allows: a new
job, a status the site reports (and the read it is decided on), and a claim.

Each is written with the jobs' events on their site's stream, in one transaction:

- PostgreSQL: one statement, sent on asyncpg directly (`PostgresDatabase.run`) in
  autocommit, where a statement is its own transaction. The writes of one kind that
  arrive together go in one statement (`store/batching.py`), which takes each site's
  stream numbers once for all of them and holds that lock only for itself and its
  commit (ADR 0009).
  A claim is two statements in one transaction (its events need the jobs it took);
  the claims of one site's queue that arrive together share it, and are dealt its
  jobs in turn.
- SQLite: the shared queries of `store/jobs.py` and `store/stream.py` in a write
  transaction, which SQLite group-commits with the others of the same moment.

A status change is conditional: the caller read the job (`read`), decided on the
change and made the job's new event from what it read; the change is stored only if
the job's queues are still as read (compare and set). Otherwise nothing is stored, and
the caller decides again on the job as it is now.

Because of that check, a caller may also decide on the job as this process last saw
it (`remembered`): what it claimed, changed or read. A site reports on the jobs it
was just sent, so most reports need no read. If anything changed the job since (a
user, the expiry, another process), the write finds it and stores nothing.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from obsrelay.domain.jobs import Job, Queue, QueueState
from obsrelay.domain.lifecycle import Cause
from obsrelay.store import jobs as queries
from obsrelay.store.batching import (
    Batches,
    columns_of,
    event_numbers,
    typed_columns,
    unnest_cte,
)
from obsrelay.store.database import Database, PostgresDatabase, Statement
from obsrelay.store.schema import claims, jobs
from obsrelay.store.stream import append_each_on_postgresql, append_events, append_events_on

T = TypeVar("T")
# How many jobs a process remembers as it last saw them (about 1.5 KB each): the ones
# the sites were sent lately and report on. The oldest seen is forgotten first.
REMEMBERED_JOBS = 4096


_COLUMNS = [column.name for column in jobs.c]
_CLAIM_RECORD = [column.name for column in claims.c]
_QUEUE_COLUMNS = [column for queue in Queue for column in queries.queue_columns(queue)]

# New jobs, each column an array, and their events.
_INSERT_ON_POSTGRESQL = Statement(
    append_each_on_postgresql(
        f"""{unnest_cte("new", [*typed_columns(jobs, _COLUMNS), ("data", "text")])},
        stored_jobs AS (
            INSERT INTO jobs ({", ".join(_COLUMNS)})
            SELECT {", ".join(_COLUMNS)} FROM new ORDER BY n
        ),
        event AS (SELECT n, site, data, created_ms AS at_ms FROM new)""",
        source="event",
    )
)


def _set_if_changed(queue: Queue) -> str:
    """SQL: `queue`'s columns set from the input where the input changes `queue`."""
    return ", ".join(
        f"{column} = CASE input.queue WHEN '{queue}' THEN input.{value} ELSE jobs.{column} END"
        for column, value in zip(
            queries.queue_columns(queue), ("status", "seconds", "at_ms"), strict=True
        )
    )


# Status changes, each to one queue of a job where both of its queues are still as read
# (was_...), with their history entries and events.
_CHANGE_ON_POSTGRESQL = Statement(
    append_each_on_postgresql(
        f"""{
            unnest_cte(
                "input",
                [
                    ("ulid", "text"),
                    ("queue", "text"),
                    ("status", "text"),
                    ("seconds", "integer"),
                    ("at_ms", "bigint"),
                    ("source", "text"),
                    ("site", "text"),
                    ("data", "text"),
                    *[(f"was_{name}", kind) for name, kind in typed_columns(jobs, _QUEUE_COLUMNS)],
                ],
            )
        },
        changed AS (
            UPDATE jobs SET {", ".join(_set_if_changed(queue) for queue in Queue)}
            FROM input
            WHERE jobs.ulid = input.ulid
                AND {" AND ".join(f"jobs.{name} = input.was_{name}" for name in _QUEUE_COLUMNS)}
            RETURNING input.*
        ),
        history AS (
            INSERT INTO job_history (job_ulid, at_ms, queue, status, seconds_until_complete, source)
            SELECT ulid, at_ms, queue, status, seconds, source FROM changed ORDER BY n
        )""",
        source="changed",
    )
)
_INSERT_ON_SQLITE = Statement(jobs.insert())
_GET_JOB = Statement(sa.select(jobs).where(jobs.c.ulid == sa.bindparam("ulid")))
_GET_JOBS_ON_POSTGRESQL = Statement(
    sa.select(jobs).where(jobs.c.ulid == sa.func.any(sa.bindparam("ulids", type_=ARRAY(sa.Text))))
)
_CLAIM_ON_POSTGRESQL = {queue: Statement(queries.claim_on_postgresql(queue)) for queue in Queue}
# The jobs that the claims of a batch took, each under its claim's id (the rows of
# `queries.claim_rows`).
_RECORD_CLAIMS_ON_POSTGRESQL = Statement(
    sa.text(
        f"""WITH {unnest_cte("taken", typed_columns(claims, _CLAIM_RECORD))}
        INSERT INTO claims ({", ".join(_CLAIM_RECORD)})
        SELECT {", ".join(_CLAIM_RECORD)} FROM taken"""
    )
)


def _job_row_as_text(job: Job) -> dict[str, Any]:
    return queries.job_row(job, json.dumps)


@dataclass(frozen=True, slots=True)
class Claimed(Generic[T]):
    """What a claim took (oldest first), the answer made of it, and the jobs' events:
    their data, numbered from `first_seq` on (0 when it took nothing)."""

    jobs: list[Job]
    answer: T
    data: list[str]
    first_seq: int


@dataclass(frozen=True, slots=True)
class _Claim:
    """One caller's claim on a queue of a site: up to `limit` jobs (None: all) that are
    deliverable from `floor_ulid` on, to be moved to `to`; `answer` makes what the caller
    is sent."""

    to: QueueState
    floor_ulid: str
    limit: int | None
    claim_id: str | None
    answer: Callable[[list[Job]], Any]


def _as_one_claim(batch: list[_Claim]) -> tuple[QueueState, str, int | None]:
    """The state, floor and limit of the one claim that takes the jobs for all of `batch`:
    the latest state and floor of theirs (a job past one caller's floor has expired for
    all), and the sum of their limits (None if any takes all)."""
    to = max((claim.to for claim in batch), key=lambda state: state.updated_ms)
    floor = max(claim.floor_ulid for claim in batch)
    limits = [claim.limit for claim in batch]
    return to, floor, None if None in limits else sum(limit or 0 for limit in limits)


def _shares(batch: list[_Claim], taken: list[Job]) -> list[list[Job]]:
    """`taken` (oldest first) dealt to the claims of `batch` in the order they came, each
    up to its limit; one without a limit takes the rest."""
    shares, start = [], 0
    for claim in batch:
        end = len(taken) if claim.limit is None else min(len(taken), start + claim.limit)
        shares.append(taken[start:end])
        start = end
    return shares


def _claimed_each(
    shares: list[list[Job]], answers: list[Any], data: list[str], first_seq: int
) -> list[Claimed[Any]]:
    """What each claim of a batch took, with its answer and its events: `data` and the
    numbers from `first_seq` on are the events of all the shares, in order."""
    claimed, offset = [], 0
    for share, answer in zip(shares, answers, strict=True):
        count = len(share)
        events = data[offset : offset + count]
        claimed.append(Claimed(share, answer, events, first_seq + offset if count else 0))
        offset += count
    return claimed


@dataclass(frozen=True, slots=True)
class _New:
    job: Job
    data: str


@dataclass(frozen=True, slots=True)
class _Change:
    read: Job
    queue: Queue
    to: QueueState
    source: str
    data: str


class _Remembered:
    """The jobs as this process last saw them, the most recent REMEMBERED_JOBS."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def get(self, ulid: str) -> Job | None:
        return self._jobs.get(ulid)

    def saw(self, job: Job) -> None:
        self._jobs.pop(job.ulid, None)  # to the end: most recently seen
        self._jobs[job.ulid] = job
        if len(self._jobs) > REMEMBERED_JOBS:
            del self._jobs[next(iter(self._jobs))]


class JobWrites:
    """Stores new jobs and status changes, with their events (of `topic`), on either
    backend."""

    def __init__(self, db: Database, topic: str, event_data: Callable[[Job], str]) -> None:
        """`event_data`: a job's event (JSON text), for the jobs a claim changes."""
        self._db = db
        self._postgres = db if isinstance(db, PostgresDatabase) else None
        self._topic = topic
        self._event_data = event_data
        self._reads = Batches(self._read_on_postgresql)
        self._inserts = Batches(self._insert_on_postgresql)
        self._changes = Batches(self._change_on_postgresql, key=lambda change: change.read.ulid)
        # Per site, queue and source: the claims that may share a transaction (a few
        # per registered site: claims come from the sites themselves).
        self._claims: dict[tuple[str, Queue, str], Batches[_Claim, Claimed[Any]]] = {}
        self._remembered = _Remembered()

    def remembered(self, ulid: str) -> Job | None:
        """The job `ulid` as this process last claimed, changed or read it, if it still
        remembers it. It may have changed since: decide on it only to try a
        `change_if_unchanged`, which finds out; anything else needs a `read`."""
        return self._remembered.get(ulid)

    async def read(self, ulid: str) -> Job | None:
        """The job `ulid` as it is now, to decide a change on (`change_if_unchanged`)."""
        if self._postgres is not None:
            job = await self._reads.add(ulid)
        else:
            rows = await self._db.fetch(_GET_JOB, {"ulid": ulid})
            job = queries.job_from_columns(rows[0], json.loads) if rows else None
        if job is not None:
            self._remembered.saw(job)
        return job

    async def _read_on_postgresql(self, ulids: list[str]) -> list[Job | None]:
        assert self._postgres is not None
        rows = await self._postgres.run(_GET_JOBS_ON_POSTGRESQL, {"ulids": ulids})
        found = {row["ulid"]: queries.job_from_columns(row, json.loads) for row in rows}
        return [found.get(ulid) for ulid in ulids]

    async def insert(self, job: Job, data: str) -> int:
        """Stores `job` and its event (`data`, JSON text); returns the event's number."""
        if self._postgres is not None:
            number = await self._inserts.add(_New(job, data))
            assert number is not None
            return number

        def store(conn: sa.Connection) -> int:
            _INSERT_ON_SQLITE.run_in(conn, _job_row_as_text(job))
            return append_events(conn, job.site, self._topic, [data], job.created_ms)

        return await self._db.write(store)

    async def change_if_unchanged(
        self, read: Job, queue: Queue, cause: Cause, to: QueueState, source: str, data: str
    ) -> int | None:
        """Moves `queue` of the job to `to` for `cause`, with a history entry and the event
        `data` (the job as it is after the change), if both of its queues are still as in
        `read`, where the caller saw that `cause` may make this change. Returns the
        event's number; None, storing nothing, if the job changed meanwhile."""
        if self._postgres is not None:
            number = await self._changes.add(_Change(read, queue, to, source, data))
        else:

            def change(conn: sa.Connection) -> int | None:
                was = queries.queues_row(read)
                unchanged = [jobs.c[name] == value for name, value in was.items()]
                where = [jobs.c.ulid == read.ulid, *unchanged]
                if not queries.change_status(conn, queue, cause, to, source, where):
                    return None
                return append_events(conn, read.site, self._topic, [data], to.updated_ms)

            number = await self._db.write(change)
        if number is not None:
            self._remembered.saw(read.with_state(queue, to))
        return number

    async def claim(
        self,
        site: str,
        queue: Queue,
        to: QueueState,
        source: str,
        answer: Callable[[list[Job]], T],
        *,
        floor_ulid: str,
        limit: int | None,
        claim_id: str | None,
    ) -> Claimed[T]:
        """Moves `site`'s deliverable UNREAD jobs on `queue` to `to` (see
        `queries.claim_unread`), remembers the claim `claim_id` if given, and stores their
        events, in one transaction; `answer(jobs)` is made inside it, so that if it
        raises nothing is stored.

        The claims of one site's queue that arrive while one of them is under way go
        together in the next transaction, as the writes of `store/batching.py` do: one
        claim takes the jobs for all of them, dealt out oldest first in the order they
        came. If an answer cannot be made, each claim of the batch is tried again alone.
        """
        key = (site, queue, source)
        claims = self._claims.get(key)
        if claims is None:
            claims = self._claims[key] = Batches(
                lambda batch: self._claim_together(site, queue, source, batch)
            )
        claimed: Claimed[T] = await claims.add(_Claim(to, floor_ulid, limit, claim_id, answer))
        for job in claimed.jobs:
            self._remembered.saw(job)
        return claimed

    async def _claim_together(
        self, site: str, queue: Queue, source: str, batch: list[_Claim]
    ) -> list[Claimed[Any]]:
        """The claims of `batch` in one transaction: each one's jobs, answer and events."""
        to, floor, limit = _as_one_claim(batch)

        def deal(taken: list[Job]) -> tuple[list[list[Job]], list[Any], list[str]]:
            shares = _shares(batch, taken)
            answers = [claim.answer(share) for claim, share in zip(batch, shares, strict=True)]
            return shares, answers, [self._event_data(job) for job in taken]

        def records(shares: list[list[Job]]) -> list[tuple[str, list[Job]]]:
            return [
                (claim.claim_id, share)
                for claim, share in zip(batch, shares, strict=True)
                if claim.claim_id is not None and share
            ]

        def on_sqlite(conn: sa.Connection) -> list[Claimed[Any]]:
            taken = queries.claim_unread(
                conn, site, queue, to, source, floor_ulid=floor, limit=limit
            )
            shares, answers, data = deal(taken)
            for claim_id, share in records(shares):
                queries.record_claim(conn, claim_id, queue, share, to.updated_ms)
            first = append_events(conn, site, self._topic, data, to.updated_ms) if taken else 0
            return _claimed_each(shares, answers, data, first)

        if self._postgres is None:
            return await self._db.write(on_sqlite)
        params = {
            "site": site,
            "floor": floor,
            "limit": limit,
            "status": to.status,
            "seconds": to.seconds_until_complete,
            "at_ms": to.updated_ms,
            "source": source,
        }
        claim = _CLAIM_ON_POSTGRESQL[queue]

        async def on_postgresql(conn: asyncpg.Connection) -> list[Claimed[Any]]:
            taken = [
                queries.job_from_columns(row, json.loads)
                for row in await claim.fetch_on(conn, params)
            ]
            shares, answers, data = deal(taken)
            recorded = [
                row
                for claim_id, share in records(shares)
                for row in queries.claim_rows(claim_id, queue, share, to.updated_ms)
            ]
            if recorded:
                await _RECORD_CLAIMS_ON_POSTGRESQL.fetch_on(conn, columns_of(recorded))
            first = (
                await append_events_on(conn, site, self._topic, data, to.updated_ms) if taken else 0
            )
            return _claimed_each(shares, answers, data, first)

        return await self._postgres.in_transaction(on_postgresql)

    async def _insert_on_postgresql(self, batch: list[_New]) -> list[int | None]:
        assert self._postgres is not None
        rows = [{**_job_row_as_text(new.job), "data": new.data} for new in batch]
        params = {**columns_of(rows), "topic": self._topic}
        found = await self._postgres.run(_INSERT_ON_POSTGRESQL, params)
        return event_numbers(found, len(batch))

    async def _change_on_postgresql(self, batch: list[_Change]) -> list[int | None]:
        assert self._postgres is not None
        rows = [
            {
                "ulid": change.read.ulid,
                "queue": str(change.queue),
                "status": change.to.status,
                "seconds": change.to.seconds_until_complete,
                "at_ms": change.to.updated_ms,
                "source": change.source,
                "site": change.read.site,
                "data": change.data,
                **{f"was_{name}": value for name, value in queries.queues_row(change.read).items()},
            }
            for change in batch
        ]
        params = {**columns_of(rows), "topic": self._topic}
        found = await self._postgres.run(_CHANGE_ON_POSTGRESQL, params)
        return event_numbers(found, len(batch))
