"""The job queue's two commonest writes, each in as few round trips as its backend allows.

A new job, and a status the site reports, are written with the job's event on its
site's stream, in one transaction:

- PostgreSQL: each is one statement, sent on asyncpg directly (`PostgresDatabase.run`)
  in autocommit, where a statement is its own transaction. The row and the stream
  numbers are taken together, so the site's stream stays locked only for that one
  statement and its commit (ADR 0009).
- SQLite: the shared queries of `store/jobs.py` and `store/stream.py` in a write
  transaction, which SQLite group-commits with the others of the same moment.

A status change is conditional: the caller read the job, decided on the change and
made the job's new event from what it read; the change is stored only if the job's
queues are still as read (compare and set), and otherwise nothing is stored and the
caller decides again on the job as it is now.
"""

import json
from typing import Any

import sqlalchemy as sa

from obsrelay.domain.jobs import Job, Queue, QueueState
from obsrelay.domain.lifecycle import Cause
from obsrelay.store import jobs as queries
from obsrelay.store.database import Database, PostgresDatabase, Statement
from obsrelay.store.schema import jobs
from obsrelay.store.stream import append_events, append_on_postgresql


def _queue_columns(queue: Queue) -> tuple[str, str, str]:
    return f"{queue}_status", f"{queue}_seconds", f"{queue}_updated_ms"


# Every column of `jobs`, each from the parameter of its name.
_COLUMNS = [column.name for column in jobs.c]
_INSERT_JOB_ON_POSTGRESQL = Statement(
    append_on_postgresql(
        "job AS (INSERT INTO jobs ({}) VALUES ({}))".format(
            ", ".join(_COLUMNS), ", ".join(f":{name}" for name in _COLUMNS)
        )
    )
)


def _change_on_postgresql(queue: Queue) -> Statement:
    """Sets `queue`'s state where both queues are still as read; adds the history entry
    and the event only then."""
    status, seconds, updated_ms = _queue_columns(queue)
    unchanged = " AND ".join(
        f"{column} = :was_{column}" for other in Queue for column in _queue_columns(other)
    )
    changed = f"""changed AS (
        UPDATE jobs SET {status} = :status, {seconds} = :seconds, {updated_ms} = :at_ms
        WHERE ulid = :ulid AND {unchanged}
        RETURNING ulid
    ), history AS (
        INSERT INTO job_history (job_ulid, at_ms, queue, status, seconds_until_complete, source)
        SELECT ulid, :at_ms, '{queue}', :status, :seconds, :source FROM changed
    )"""
    return Statement(append_on_postgresql(changed, "EXISTS (SELECT FROM changed)"))


_CHANGE_ON_POSTGRESQL = {queue: _change_on_postgresql(queue) for queue in Queue}
_GET_JOB = Statement(sa.select(jobs).where(jobs.c.ulid == sa.bindparam("ulid")))


def _queues_row(job: Job) -> dict[str, Any]:
    """The columns of both of `job`'s queues."""
    return {
        column: value
        for queue in Queue
        for column, value in zip(
            _queue_columns(queue), _state_values(job.state(queue)), strict=True
        )
    }


def _job_row(job: Job) -> dict[str, Any]:
    """`job` as the parameters of its row, JSON as text (asyncpg's form)."""
    return {
        "ulid": job.ulid,
        "site": job.site,
        "created_ms": job.created_ms,
        "device_type": job.device_type,
        "device_instance": job.device_instance,
        "action": job.action,
        "required_params": json.dumps(job.required_params),
        "optional_params": json.dumps(job.optional_params),
        "user_id": job.user.user_id,
        "user_name": job.user.user_name,
        "user_roles": json.dumps(list(job.user.roles)),
        **_queues_row(job),
    }


def _state_values(state: QueueState) -> tuple[str, int, int]:
    return state.status, state.seconds_until_complete, state.updated_ms


class JobWrites:
    """Stores new jobs and status changes, with their events (of `topic`), on either
    backend."""

    def __init__(self, db: Database, topic: str) -> None:
        self._db = db
        self._postgres = db if isinstance(db, PostgresDatabase) else None
        self._topic = topic

    async def read(self, ulid: str) -> Job | None:
        """The job `ulid` as it is now, to decide a change on (`change_if_unchanged`)."""
        rows = await self._db.fetch(_GET_JOB, {"ulid": ulid})
        return queries.job_from_columns(rows[0], json.loads) if rows else None

    async def insert(self, job: Job, data: str) -> int:
        """Stores `job` and its event (`data`, JSON text); returns the event's number."""
        if self._postgres is not None:
            params = {**_job_row(job), **self._event(job.site, data, job.created_ms)}
            [row] = await self._postgres.run(_INSERT_JOB_ON_POSTGRESQL, params)
            return int(row["seq"])

        def store(conn: sa.Connection) -> int:
            queries.insert_job(conn, job)
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
            params = {
                "ulid": read.ulid,
                "status": to.status,
                "seconds": to.seconds_until_complete,
                "source": source,
                **self._event(read.site, data, to.updated_ms),
                **{f"was_{name}": value for name, value in _queues_row(read).items()},
            }
            rows = await self._postgres.run(_CHANGE_ON_POSTGRESQL[queue], params)
            return int(rows[0]["seq"]) if rows else None

        def change(conn: sa.Connection) -> int | None:
            unchanged = [jobs.c[name] == value for name, value in _queues_row(read).items()]
            where = [jobs.c.ulid == read.ulid, *unchanged]
            if not queries.change_status(conn, queue, cause, to, source, where):
                return None
            return append_events(conn, read.site, self._topic, [data], to.updated_ms)

        return await self._db.write(change)

    def _event(self, site: str, data: str, at_ms: int) -> dict[str, Any]:
        """The parameters of `append_on_postgresql` for one event."""
        return {"site": site, "count": 1, "topic": self._topic, "items": [data], "at_ms": at_ms}
