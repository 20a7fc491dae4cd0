"""A claim and a probe read a queue's partial index of unread jobs, on both backends,
even when the database's statistics say that most jobs are unread (a backlog), where
PostgreSQL once walked every finished job before the first unread one (store/jobs.py
`_of_site_from`). What the planner chooses is asserted, never how long it takes."""

from typing import Any

import pytest

from obsrelay.domain.jobs import UNKNOWN_SECONDS, Queue, QueueState
from obsrelay.domain.lifecycle import COMPLETE, RECEIVED, UNREAD
from obsrelay.store.database import Database, PostgresDatabase, SQLiteDatabase, Statement
from obsrelay.store.job_writes import _CLAIM_ON_POSTGRESQL
from obsrelay.store.jobs import UNREAD_PROBES, claim_unread
from obsrelay.store.schema import jobs

SITE = "backlog"
FLOOR = "01A00000000000000000000000"


def _row(number: int, status: str) -> dict[str, Any]:
    return {
        "ulid": f"01K{number:023d}",
        "site": SITE,
        "created_ms": 1_790_000_000_000 + number,
        "device_type": "camera",
        "device_instance": "camera1",
        "action": "expose",
        "required_params": {},
        "optional_params": {},
        "user_id": "u1",
        "user_name": "User One",
        "user_roles": [],
        **{f"{queue}_status": status for queue in Queue},
        **{f"{queue}_seconds": UNKNOWN_SECONDS for queue in Queue},
        **{f"{queue}_updated_ms": 1_790_000_000_000 for queue in Queue},
    }


async def _backlog(db: Database, finished: int, unread: int) -> None:
    """`finished` finished jobs, then `unread` newer unread ones, and fresh statistics
    that say so."""
    rows = [_row(n, COMPLETE) for n in range(finished)]
    rows += [_row(finished + n, UNREAD) for n in range(unread)]
    await db.write(lambda conn: conn.execute(jobs.insert(), rows))
    if isinstance(db, PostgresDatabase):
        await db.in_transaction(lambda conn: conn.execute("ANALYZE jobs"))
    else:
        await db.write(lambda conn: conn.exec_driver_sql("ANALYZE"))


async def _plan(db: Database, sql: str, args: list[Any]) -> str:
    if isinstance(db, PostgresDatabase):
        rows = await db.in_transaction(lambda conn: conn.fetch(f"EXPLAIN {sql}", *args))
        return "\n".join(row[0] for row in rows)
    found = await db.read(
        lambda conn: list(conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", tuple(args)))
    )
    return "\n".join(str(row[3]) for row in found)


async def _plan_of(db: Database, statement: Statement, params: dict[str, Any]) -> str:
    dialect = "postgresql" if isinstance(db, PostgresDatabase) else "sqlite"
    return await _plan(db, statement.sql(dialect), statement.arguments(dialect, params))


async def _sqlite_claim_plan(db: SQLiteDatabase, queue: Queue) -> str:
    """The plan of the statement with which `claim_unread` changes the jobs it picks, as
    SQLite ran it (its own trace of the claim)."""
    ran: list[str] = []
    driver = db._loop_driver()
    driver.set_trace_callback(ran.append)
    received = QueueState(RECEIVED, UNKNOWN_SECONDS, 1_790_000_000_000)
    try:
        claimed = await db.write(
            lambda conn: claim_unread(
                conn, SITE, queue, received, "site", floor_ulid=FLOOR, limit=10
            )
        )
    finally:
        driver.set_trace_callback(None)
    assert len(claimed) == 10
    [update] = [sql for sql in ran if "UPDATE jobs" in sql]
    return await _plan(db, update, [])


@pytest.mark.parametrize("queue", list(Queue))
async def test_claims_and_probes_read_the_index_of_unread_jobs_in_a_backlog(
    own_db: Database, queue: Queue
):
    await _backlog(own_db, finished=3000, unread=3000)
    index = f"ix_jobs_unread_{queue}"
    probe = await _plan_of(own_db, UNREAD_PROBES[queue], {"site": SITE, "floor": FLOOR})
    if isinstance(own_db, PostgresDatabase):
        params = {
            "site": SITE,
            "floor": FLOOR,
            "limit": 10,
            "status": RECEIVED,
            "seconds": UNKNOWN_SECONDS,
            "at_ms": 1_790_000_000_000,
            "source": "site",
            "claim_id": None,
        }
        claim = await _plan_of(own_db, _CLAIM_ON_POSTGRESQL[queue], params)
    else:
        assert isinstance(own_db, SQLiteDatabase)
        claim = await _sqlite_claim_plan(own_db, queue)
    # Neither a walk of the table nor one of the primary key from the floor on (a claim
    # then finds each job it picked by its key, `ulid =`).
    walks = ("Seq Scan on jobs", "(ulid)::text >=", "SCAN jobs", "sqlite_autoindex_jobs_1 (ulid>")
    for plan in (probe, claim):
        assert index in plan, plan
        assert not any(walk in plan for walk in walks), plan
