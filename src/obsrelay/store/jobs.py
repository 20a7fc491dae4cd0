"""Queries on the jobs and job_history tables. The same statements run on SQLite and PostgreSQL.

Every function takes the connection of a transaction that `Database.read` or
`Database.write` runs; none of them commits. Status literals that partial indexes depend on
are written into the SQL, not bound as parameters, so that both planners can use the
indexes (a bound value is unknown when the plan is made).
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from obsrelay.domain.jobs import HistoryEntry, Identity, Job, Queue, QueueState, creation_history
from obsrelay.domain.lifecycle import NAMED_STATUSES, UNREAD, Cause, State, leaves
from obsrelay.store.database import Statement
from obsrelay.store.schema import claims, job_history, jobs

_INSERT_JOB = jobs.insert()
_INSERT_HISTORY = job_history.insert()
_INSERT_CLAIM = claims.insert()


def _literal(status: str) -> sa.ColumnClause[str]:
    return sa.literal_column(f"'{status}'")


_UNREAD = _literal(UNREAD)


def _status(queue: Queue) -> sa.Column[Any]:
    return jobs.c[queue_columns(queue)[0]]


_COLUMNS_OF_QUEUE = {
    queue: (f"{queue}_status", f"{queue}_seconds", f"{queue}_updated_ms") for queue in Queue
}


def queue_columns(queue: Queue) -> tuple[str, str, str]:
    """The names of `queue`'s columns: its status, seconds and update time."""
    return _COLUMNS_OF_QUEUE[queue]


def _queue_values(queue: Queue, state: QueueState) -> dict[str, Any]:
    status, seconds, updated_ms = queue_columns(queue)
    return {
        status: state.status,
        seconds: state.seconds_until_complete,
        updated_ms: state.updated_ms,
    }


def queues_row(job: Job) -> dict[str, Any]:
    """The columns of both of `job`'s queues."""
    return {
        **_queue_values(Queue.PRIMARY, job.primary),
        **_queue_values(Queue.ALTERNATE, job.alternate),
    }


def _as_is(value: Any) -> Any:
    return value


def job_row(job: Job, encode_json: Callable[[Any], Any] = _as_is) -> dict[str, Any]:
    """`job` as the columns of its row; `encode_json` writes the JSON columns (as text for
    a driver called directly; SQLAlchemy encodes them itself)."""
    return {
        "ulid": job.ulid,
        "site": job.site,
        "created_ms": job.created_ms,
        "device_type": job.device_type,
        "device_instance": job.device_instance,
        "action": job.action,
        "required_params": encode_json(job.required_params),
        "optional_params": encode_json(job.optional_params),
        "user_id": job.user.user_id,
        "user_name": job.user.user_name,
        "user_roles": encode_json(list(job.user.roles)),
        **queues_row(job),
    }


def _leaving(queue: Queue, cause: Cause) -> sa.ColumnElement[bool]:
    """The rows whose `queue` is in a state that `cause` may leave (lifecycle's table)."""
    states = leaves(cause)
    column = _status(queue)
    if State.RUNNING in states:  # free text: all but the named states it may not leave
        staying = sorted(NAMED_STATUSES - {state.value for state in states})
        return column.not_in([_literal(status) for status in staying])
    names = sorted(state.value for state in states)
    if len(names) == 1:  # `=`, so that the partial index on UNREAD serves it
        return column == _literal(names[0])
    return column.in_([_literal(name) for name in names])


def _picked(pick: sa.Select[tuple[str]]) -> sa.Select[tuple[str]]:
    """The picked ULIDs, evaluated exactly once.

    A plain `IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` may be re-run by
    PostgreSQL for each row it updates, re-locking past rows it just changed and
    updating more than n; a materialized CTE is computed once.
    """
    picked = pick.cte("picked").prefix_with("MATERIALIZED")
    return sa.select(picked.c.ulid)


def row_to_job(row: sa.Row[Any]) -> Job:
    return job_from_columns(row._mapping)


def job_from_columns(m: Mapping[Any, Any], decode: Callable[[Any], Any] = _as_is) -> Job:
    """The job of a row of `jobs`, given by column name; `decode` reads its JSON columns
    (asyncpg gives them as text)."""
    return Job(
        ulid=m["ulid"],
        site=m["site"],
        created_ms=m["created_ms"],
        device_type=m["device_type"],
        device_instance=m["device_instance"],
        action=m["action"],
        required_params=decode(m["required_params"]),
        optional_params=decode(m["optional_params"]),
        user=Identity(m["user_id"], m["user_name"], tuple(decode(m["user_roles"]))),
        primary=QueueState(m["primary_status"], m["primary_seconds"], m["primary_updated_ms"]),
        alternate=QueueState(
            m["alternate_status"], m["alternate_seconds"], m["alternate_updated_ms"]
        ),
    )


def insert_job(conn: sa.Connection, job: Job) -> None:
    conn.execute(_INSERT_JOB, job_row(job))


def _insert_history(conn: sa.Connection, entries: Iterable[tuple[str, HistoryEntry]]) -> None:
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


def jobs_of_claim(conn: sa.Connection, site: str, queue: Queue, claim_id: str) -> list[Job]:
    """The jobs of `site` that the claim `claim_id` took on `queue`, oldest first."""
    taken = sa.select(claims.c.job_ulid).where(
        claims.c.claim_id == claim_id, claims.c.queue == str(queue)
    )
    query = sa.select(jobs).where(jobs.c.ulid.in_(taken), jobs.c.site == site).order_by(jobs.c.ulid)
    return [row_to_job(row) for row in conn.execute(query)]


def claim_rows(
    claim_id: str, queue: Queue, taken: Sequence[Job], at_ms: int
) -> list[dict[str, Any]]:
    """The rows of `claims` that remember which jobs the claim `claim_id` took."""
    return [
        {"claim_id": claim_id, "queue": str(queue), "job_ulid": job.ulid, "at_ms": at_ms}
        for job in taken
    ]


def record_claim(
    conn: sa.Connection, claim_id: str, queue: Queue, taken: Sequence[Job], at_ms: int
) -> None:
    """Remembers which jobs the claim `claim_id` took, for a retry of it."""
    rows = claim_rows(claim_id, queue, taken, at_ms)
    if rows:
        conn.execute(_INSERT_CLAIM, rows)


def forget_claims_before(conn: sa.Connection, at_ms: int) -> None:
    """Drops claims older than `at_ms`: nobody retries a claim that old."""
    conn.execute(claims.delete().where(claims.c.at_ms < at_ms))


def _of_site_from(site: Any, floor_ulid: Any) -> list[sa.ColumnElement[bool]]:
    """`site`'s jobs from `floor_ulid` on, as terms that only an index on (site, ulid)
    serves, with `_OLDEST_OF_SITE_FIRST`: a claim and a probe read the partial index
    of a queue's unread jobs (schema.py), however many jobs there are.

    Written `site = s AND ulid >= f ORDER BY ulid`, PostgreSQL may instead walk the
    primary key (or the table) from f when its statistics say that most jobs are
    unread, as during a backlog: it expects to meet one soon, but the unread jobs are
    the newest, behind every finished one. Behind 10,000 finished jobs that took 3 ms
    per claim, against 0.06 ms on the partial index. As a row comparison, in the order
    (site, ulid), which the primary key cannot give, it reads the partial index. SQLite
    reads it either way.
    """
    return [sa.tuple_(jobs.c.site, jobs.c.ulid) >= sa.tuple_(site, floor_ulid), jobs.c.site <= site]


_OLDEST_OF_SITE_FIRST = (jobs.c.site, jobs.c.ulid)


def _unread_probe(queue: Queue) -> sa.Select[tuple[str]]:
    return (
        sa.select(jobs.c.ulid)
        .where(
            _status(queue) == _UNREAD,
            *_of_site_from(sa.bindparam("site"), sa.bindparam("floor")),
        )
        .order_by(*_OLDEST_OF_SITE_FIRST)
        .limit(1)
    )


# Whether a site has a deliverable job on a queue: a cheap check before claiming, which
# most polls make (`Database.fetch`; parameters site and floor, the oldest ULID that may
# still be delivered). A row if it has.
UNREAD_PROBES = {queue: Statement(_unread_probe(queue)) for queue in Queue}


def change_status(
    conn: sa.Connection,
    queue: Queue,
    cause: Cause,
    to: QueueState,
    source: str,
    where: list[sa.ColumnElement[bool]],
    *,
    limit: int | None = None,
    skip_locked: bool = False,
    oldest_first: tuple[sa.Column[Any], ...] = (jobs.c.ulid,),
) -> list[Job]:
    """The one way a stored status changes: moves `queue` of the jobs that match `where`,
    and are in a state `cause` may leave, to `to`, and adds each change to the job's
    history. Returns the changed jobs, oldest first.

    With `skip_locked`, the oldest matching rows (at most `limit`, in the order
    `oldest_first`) are picked and changed in one statement, and on PostgreSQL rows
    that a concurrent transaction holds are skipped, so no two pollers take the same
    job.
    """
    match = [_leaving(queue, cause), *where]
    if skip_locked:
        pick = (
            sa.select(jobs.c.ulid)
            .where(*match)
            .order_by(*oldest_first)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        match = [jobs.c.ulid.in_(_picked(pick)), _leaving(queue, cause)]
    query = jobs.update().where(*match).values(**_queue_values(queue, to)).returning(*jobs.c)
    changed = sorted((row_to_job(row) for row in conn.execute(query)), key=lambda job: job.ulid)
    entry = HistoryEntry(to.updated_ms, queue, to.status, to.seconds_until_complete, source)
    _insert_history(conn, ((job.ulid, entry) for job in changed))
    return changed


def change_one(
    conn: sa.Connection, ulid: str, queue: Queue, cause: Cause, to: QueueState, source: str
) -> Job:
    """`change_status` for one job that the caller holds (read `for_update`) and checked."""
    [job] = change_status(conn, queue, cause, to, source, [jobs.c.ulid == ulid])
    return job


def claim_unread(
    conn: sa.Connection,
    site: str,
    queue: Queue,
    to: QueueState,
    source: str,
    *,
    floor_ulid: str,
    limit: int | None = None,
) -> list[Job]:
    """Moves `site`'s deliverable UNREAD jobs on `queue` to `to` (RECEIVED), oldest first."""
    return change_status(
        conn,
        queue,
        Cause.CLAIM,
        to,
        source,
        _of_site_from(site, floor_ulid),
        limit=limit,
        skip_locked=True,
        oldest_first=_OLDEST_OF_SITE_FIRST,
    )


def claim_on_postgresql(queue: Queue) -> sa.Select[Any]:
    """`claim_unread` as one statement for PostgreSQL (SQLite has no writes in a WITH):
    moves the site's deliverable UNREAD jobs on `queue`, the oldest first and at most
    `limit` (NULL: all), to RECEIVED at `at_ms`, and adds their history entries. Its
    rows: the changed jobs, oldest first. Parameters: site, floor, limit, status,
    seconds, at_ms, source."""
    match = [
        _leaving(queue, Cause.CLAIM),
        *_of_site_from(sa.bindparam("site"), sa.bindparam("floor")),
    ]
    pick = (
        sa.select(jobs.c.ulid)
        .where(*match)
        .order_by(*_OLDEST_OF_SITE_FIRST)
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .with_for_update(skip_locked=True)
    )
    at_ms = sa.bindparam("at_ms", type_=sa.BigInteger)
    status = sa.bindparam("status", type_=sa.String)
    seconds = sa.bindparam("seconds", type_=sa.Integer)
    # Each picked job found by its key, as an array: written `IN (picked)`, PostgreSQL
    # walked the whole table to join the picked jobs when most jobs were unread.
    picked = sa.func.any(sa.func.array(_picked(pick).scalar_subquery()))
    changed = (
        jobs.update()
        .where(jobs.c.ulid == picked, _leaving(queue, Cause.CLAIM))
        .values(dict(zip(queue_columns(queue), (status, seconds, at_ms), strict=True)))
        .returning(*jobs.c)
        .cte("changed")
    )
    history = job_history.insert().from_select(
        ["job_ulid", "at_ms", "queue", "status", "seconds_until_complete", "source"],
        sa.select(changed.c.ulid, at_ms, _literal(queue), status, seconds, sa.bindparam("source")),
    )
    return sa.select(changed).add_cte(history.cte("history")).order_by(changed.c.ulid)


def cancel_open_before(
    conn: sa.Connection, site: str, before_ulid: str, to: QueueState, source: str
) -> list[Job]:
    """Cancels every queue of `site`'s jobs older than `before_ulid` that is still open."""
    where = [jobs.c.site == site, jobs.c.ulid < before_ulid]
    changed = [
        job.ulid
        for queue in Queue
        for job in change_status(conn, queue, Cause.CANCEL_ALL, to, source, where)
    ]
    return get_jobs(conn, sorted(set(changed)))


def expire_unread_before(
    conn: sa.Connection, queue: Queue, floor_ulid: str, to: QueueState, source: str, limit: int
) -> list[Job]:
    """Expires up to `limit` jobs still UNREAD on `queue` and older than `floor_ulid`."""
    where = [jobs.c.ulid < floor_ulid]
    return change_status(
        conn, queue, Cause.EXPIRE, to, source, where, limit=limit, skip_locked=True
    )


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


def whole_history(conn: sa.Connection, job: Job) -> list[HistoryEntry]:
    """`job`'s whole status history, oldest change first: its creation, which follows from
    the job and is not stored, then the stored changes."""
    return creation_history(job) + get_history(conn, job.ulid)
