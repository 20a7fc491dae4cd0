"""Queries on the jobs and job_history tables. The same statements run on SQLite and PostgreSQL.

Every function takes the connection of a transaction that `Database.read` or
`Database.write` runs; none of them commits. Status literals that partial indexes depend on
are written into the SQL, not bound as parameters, so that both planners can use the
indexes (a bound value is unknown when the plan is made).
"""

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from obsrelay.domain.jobs import (
    CANCELLED,
    EXPIRED,
    FINAL_STATUSES,
    RECEIVED,
    UNKNOWN_SECONDS,
    UNREAD,
    HistoryEntry,
    Identity,
    Job,
    Queue,
    QueueState,
)
from obsrelay.store.schema import job_history, jobs

_INSERT_JOB = jobs.insert()
_INSERT_HISTORY = job_history.insert()
_UNREAD: sa.ColumnClause[str] = sa.literal_column(f"'{UNREAD}'")
_FINAL: list[sa.ColumnClause[str]] = [
    sa.literal_column(f"'{status}'") for status in sorted(FINAL_STATUSES)
]


def _status(queue: Queue) -> sa.Column[Any]:
    return jobs.c[f"{queue}_status"]


def _queue_values(queue: Queue, status: str, seconds: int, now_ms: int) -> dict[str, Any]:
    return {
        f"{queue}_status": status,
        f"{queue}_seconds": seconds,
        f"{queue}_updated_ms": now_ms,
    }


def _picked(pick: sa.Select[tuple[str]]) -> sa.Select[tuple[str]]:
    """The picked ULIDs, evaluated exactly once.

    A plain `IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` may be re-run by
    PostgreSQL for each row it updates, re-locking past rows it just changed and
    updating more than n; a materialized CTE is computed once.
    """
    picked = pick.cte("picked").prefix_with("MATERIALIZED")
    return sa.select(picked.c.ulid)


def row_to_job(row: sa.Row[Any]) -> Job:
    m = row._mapping
    return Job(
        ulid=m["ulid"],
        site=m["site"],
        created_ms=m["created_ms"],
        device_type=m["device_type"],
        device_instance=m["device_instance"],
        action=m["action"],
        required_params=m["required_params"],
        optional_params=m["optional_params"],
        user=Identity(m["user_id"], m["user_name"], tuple(m["user_roles"])),
        primary=QueueState(m["primary_status"], m["primary_seconds"], m["primary_updated_ms"]),
        alternate=QueueState(
            m["alternate_status"], m["alternate_seconds"], m["alternate_updated_ms"]
        ),
    )


def insert_job(conn: sa.Connection, job: Job) -> None:
    conn.execute(
        _INSERT_JOB,
        {
            "ulid": job.ulid,
            "site": job.site,
            "created_ms": job.created_ms,
            "device_type": job.device_type,
            "device_instance": job.device_instance,
            "action": job.action,
            "required_params": job.required_params,
            "optional_params": job.optional_params,
            "user_id": job.user.user_id,
            "user_name": job.user.user_name,
            "user_roles": list(job.user.roles),
            **_queue_values(
                Queue.PRIMARY,
                job.primary.status,
                job.primary.seconds_until_complete,
                job.primary.updated_ms,
            ),
            **_queue_values(
                Queue.ALTERNATE,
                job.alternate.status,
                job.alternate.seconds_until_complete,
                job.alternate.updated_ms,
            ),
        },
    )


def insert_history(conn: sa.Connection, entries: Iterable[tuple[str, HistoryEntry]]) -> None:
    rows = [
        {
            "job_ulid": ulid,
            "at_ms": entry.at_ms,
            "queue": str(entry.queue),
            "status": entry.status,
            "seconds_until_complete": entry.seconds_until_complete,
            "source": entry.source,
        }
        for ulid, entry in entries
    ]
    if rows:
        conn.execute(_INSERT_HISTORY, rows)


def get_job(conn: sa.Connection, ulid: str, *, for_update: bool = False) -> Job | None:
    query = sa.select(jobs).where(jobs.c.ulid == ulid)
    if for_update:
        query = query.with_for_update()
    row = (conn.execute(query)).first()
    return row_to_job(row) if row else None


def get_jobs(conn: sa.Connection, ulids: Sequence[str]) -> list[Job]:
    """The jobs with these ULIDs, oldest first."""
    if not ulids:
        return []
    query = sa.select(jobs).where(jobs.c.ulid.in_(ulids)).order_by(jobs.c.ulid)
    return [row_to_job(row) for row in conn.execute(query)]


def jobs_with_history_source(conn: sa.Connection, queue: Queue, source: str) -> list[Job]:
    """The jobs with a history entry on `queue` written by `source`, oldest first."""
    ulids = sa.select(job_history.c.job_ulid).where(
        job_history.c.source == source, job_history.c.queue == str(queue)
    )
    query = sa.select(jobs).where(jobs.c.ulid.in_(ulids)).order_by(jobs.c.ulid)
    return [row_to_job(row) for row in conn.execute(query)]


def set_queue_state(conn: sa.Connection, ulid: str, queue: Queue, state: QueueState) -> Job:
    query = (
        jobs.update()
        .where(jobs.c.ulid == ulid)
        .values(
            **_queue_values(queue, state.status, state.seconds_until_complete, state.updated_ms)
        )
        .returning(*jobs.c)
    )
    return row_to_job((conn.execute(query)).one())


def _unread_probe(queue: Queue) -> sa.Select[tuple[str]]:
    return (
        sa.select(jobs.c.ulid)
        .where(
            jobs.c.site == sa.bindparam("site"),
            _status(queue) == _UNREAD,
            jobs.c.ulid >= sa.bindparam("floor"),
        )
        .limit(1)
    )


# Built once: every empty poll runs one of these, and building a statement costs more
# than SQLite takes to answer it.
_UNREAD_PROBES = {queue: _unread_probe(queue) for queue in Queue}


def record_change(
    conn: sa.Connection, ulid: str, queue: Queue, state: QueueState, source: str
) -> Job:
    """Sets one queue's state of a job and adds the change to its history."""
    job = set_queue_state(conn, ulid, queue, state)
    entry = HistoryEntry(
        state.updated_ms, queue, state.status, state.seconds_until_complete, source
    )
    insert_history(conn, [(ulid, entry)])
    return job


def has_unread(conn: sa.Connection, site: str, queue: Queue, floor_ulid: str) -> bool:
    """Whether `site` has a deliverable job on `queue`: a cheap check before claiming."""
    found = conn.execute(_UNREAD_PROBES[queue], {"site": site, "floor": floor_ulid})
    return found.first() is not None


def _take_unread(
    conn: sa.Connection,
    queue: Queue,
    where: list[sa.ColumnElement[bool]],
    new_status: str,
    now_ms: int,
    limit: int | None,
) -> list[Job]:
    """Moves the oldest jobs UNREAD on `queue` that match `where` to `new_status`.

    One statement: the rows are picked and changed together, and on PostgreSQL rows
    that a concurrent transaction holds are skipped, so no two take the same job.
    Returns the changed jobs, oldest first.
    """
    pick = (
        sa.select(jobs.c.ulid)
        .where(_status(queue) == _UNREAD, *where)
        .order_by(jobs.c.ulid)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    query = (
        jobs.update()
        .where(jobs.c.ulid.in_(_picked(pick)), _status(queue) == _UNREAD)
        .values(**_queue_values(queue, new_status, UNKNOWN_SECONDS, now_ms))
        .returning(*jobs.c)
    )
    taken = [row_to_job(row) for row in conn.execute(query)]
    taken.sort(key=lambda job: job.ulid)
    return taken


def claim_unread(
    conn: sa.Connection,
    site: str,
    queue: Queue,
    *,
    floor_ulid: str,
    now_ms: int,
    limit: int | None = None,
) -> list[Job]:
    """Marks `site`'s deliverable UNREAD jobs on `queue` RECEIVED; returns them, oldest first."""
    where = [jobs.c.site == site, jobs.c.ulid >= floor_ulid]
    return _take_unread(conn, queue, where, RECEIVED, now_ms, limit)


def cancel_open_before(
    conn: sa.Connection, site: str, before_ulid: str, now_ms: int
) -> dict[str, list[Queue]]:
    """Sets CANCELLED on every queue of `site`'s earlier jobs that is not final yet.

    Returns, per changed job, the queues that changed.
    """
    changed: dict[str, list[Queue]] = {}
    for queue in Queue:
        query = (
            jobs.update()
            .where(
                jobs.c.site == site,
                jobs.c.ulid < before_ulid,
                _status(queue).not_in(_FINAL),
            )
            .values(**_queue_values(queue, CANCELLED, UNKNOWN_SECONDS, now_ms))
            .returning(jobs.c.ulid)
        )
        for (ulid,) in conn.execute(query):
            changed.setdefault(ulid, []).append(queue)
    return changed


def expire_unread_before(
    conn: sa.Connection, queue: Queue, floor_ulid: str, now_ms: int, limit: int
) -> list[Job]:
    """Sets EXPIRED on up to `limit` jobs still UNREAD on `queue` and older than `floor_ulid`."""
    return _take_unread(conn, queue, [jobs.c.ulid < floor_ulid], EXPIRED, now_ms, limit)


def list_jobs(
    conn: sa.Connection,
    site: str,
    *,
    floor_ulid: str | None = None,
    created_since_ms: int | None = None,
    status: str | None = None,
    queue: Queue = Queue.PRIMARY,
    after: str | None = None,
    newest_first: bool = False,
    limit: int | None = None,
) -> list[Job]:
    """`site`'s jobs in ULID order; `after` continues a page in that order."""
    query = sa.select(jobs).where(jobs.c.site == site)
    if floor_ulid is not None:
        query = query.where(jobs.c.ulid >= floor_ulid)
    if created_since_ms is not None:
        query = query.where(jobs.c.created_ms >= created_since_ms)
    if status is not None:
        query = query.where(_status(queue) == status)
    if after is not None:
        query = query.where(jobs.c.ulid < after if newest_first else jobs.c.ulid > after)
    query = query.order_by(jobs.c.ulid.desc() if newest_first else jobs.c.ulid).limit(limit)
    return [row_to_job(row) for row in conn.execute(query)]


def get_history(conn: sa.Connection, ulid: str) -> list[HistoryEntry]:
    query = sa.select(job_history).where(job_history.c.job_ulid == ulid).order_by(job_history.c.id)
    return [
        HistoryEntry(
            at_ms=row.at_ms,
            queue=Queue(row.queue),
            status=row.status,
            seconds_until_complete=row.seconds_until_complete,
            source=row.source,
        )
        for row in conn.execute(query)
    ]
