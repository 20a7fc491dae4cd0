"""A claim and a probe read a queue's partial index of unread jobs, on both backends,
even when the database's statistics say that most jobs are unread (a backlog), where
PostgreSQL once walked every finished job before the first unread one (store/jobs.py
`_of_site_from`). On PostgreSQL each plan is the one the direct pool runs: a probe's
planned once for any values, a claim's planned for its own (store/database.py
`_PLANNED_ONCE`). What the planner chooses is asserted, never how long it takes."""

from typing import Any

import pytest

from obsrelay.domain.jobs import UNKNOWN_SECONDS, Queue, QueueState
from obsrelay.domain.lifecycle import COMPLETE, RECEIVED, UNREAD
from obsrelay.store.batching import columns_of
from obsrelay.store.database import Database, PostgresDatabase, SQLiteDatabase, Statement
from obsrelay.store.job_writes import (
    _CHANGE_ON_POSTGRESQL,
    _CLAIM_ON_POSTGRESQL,
    _GET_JOBS_ON_POSTGRESQL,
)
from obsrelay.store.jobs import UNREAD_PROBES, claim_unread, queue_columns
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


async def _sqlite_plan(db: SQLiteDatabase, sql: str, args: list[Any]) -> str:
    found = await db.read(
        lambda conn: list(conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", tuple(args)))
    )
    return "\n".join(str(row[3]) for row in found)


def _literal(value: Any) -> str:
    """`value` as SQL text, for an EXECUTE (which takes no bound parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        quoted = ('"' + str(item).replace("\\", "\\\\").replace('"', '\\"') + '"' for item in value)
        return _literal("{" + ",".join(quoted) + "}")
    return "'" + str(value).replace("'", "''") + "'"


async def _plan_as_run(
    db: PostgresDatabase, statement: Statement, params: dict[str, Any], *, alone: bool
) -> str:
    """The plan with which the direct pool runs `statement`: `alone`, as a statement of its
    own, planned once for any values; else in a claim's transaction, planned for its
    values (store/database.py `_PLANNED_ONCE`)."""
    sql = statement.sql("postgresql")
    values = ", ".join(_literal(value) for value in statement.arguments("postgresql", params))

    async def explain(conn: Any) -> str:
        if alone:  # the pool's own setting, not the claim transaction's
            await conn.execute("SET LOCAL plan_cache_mode TO DEFAULT")
        mode = await conn.fetchval("SHOW plan_cache_mode")
        assert mode == ("force_generic_plan" if alone else "force_custom_plan")
        await conn.execute(f"PREPARE planned AS {sql}")
        rows = await conn.fetch(f"EXPLAIN EXECUTE planned({values})")
        await conn.execute("DEALLOCATE planned")
        return "\n".join(row[0] for row in rows)

    return await db.in_transaction(explain)


async def _sqlite_claim_plan(db: SQLiteDatabase, queue: Queue, limit: int) -> str:
    """The plan of the statement with which `claim_unread` changes the jobs it picks, as
    SQLite ran it (its own trace of the claim)."""
    ran: list[str] = []
    driver = db._loop_driver()
    driver.set_trace_callback(ran.append)
    received = QueueState(RECEIVED, UNKNOWN_SECONDS, 1_790_000_000_000)
    try:
        claimed = await db.write(
            lambda conn: claim_unread(
                conn, SITE, queue, received, "site", floor_ulid=FLOOR, limit=limit
            )
        )
    finally:
        driver.set_trace_callback(None)
    assert len(claimed) == limit
    [update] = [sql for sql in ran if "UPDATE jobs" in sql]
    return await _sqlite_plan(db, update, [])


@pytest.mark.parametrize("queue", list(Queue))
@pytest.mark.parametrize(
    ("finished", "unread", "limit"),
    [(3000, 3000, 10), (0, 5000, 160)],
    ids=["behind finished jobs", "many at once from a full queue"],
)
async def test_claims_and_probes_read_the_index_of_unread_jobs_in_a_backlog(
    own_db: Database, queue: Queue, finished: int, unread: int, limit: int
):
    """A claim picks its jobs from the index of unread jobs, then changes each one found
    by its key. Taking many from a queue where every job is unread, PostgreSQL once
    walked the whole table to find the ones it had picked (a hash join)."""
    await _backlog(own_db, finished=finished, unread=unread)
    index = f"ix_jobs_unread_{queue}"
    probed = {"site": SITE, "floor": FLOOR}
    if isinstance(own_db, PostgresDatabase):
        probe = await _plan_as_run(own_db, UNREAD_PROBES[queue], probed, alone=True)
        params = {
            "site": SITE,
            "floor": FLOOR,
            "limit": limit,
            "status": RECEIVED,
            "seconds": UNKNOWN_SECONDS,
            "at_ms": 1_790_000_000_000,
            "source": "site",
        }
        claim = await _plan_as_run(own_db, _CLAIM_ON_POSTGRESQL[queue], params, alone=False)
    else:
        assert isinstance(own_db, SQLiteDatabase)
        probe = await _sqlite_plan(
            own_db,
            UNREAD_PROBES[queue].sql("sqlite"),
            UNREAD_PROBES[queue].arguments("sqlite", probed),
        )
        claim = await _sqlite_claim_plan(own_db, queue, limit)
    # Neither a walk of the table nor one of the primary key from the floor on (a claim
    # then finds each job it picked by its key, `ulid =`).
    walks = ("Seq Scan on jobs", "(ulid)::text >=", "SCAN jobs", "sqlite_autoindex_jobs_1 (ulid>")
    for plan in (probe, claim):
        assert index in plan, plan
        assert not any(walk in plan for walk in walks), plan
    if isinstance(own_db, PostgresDatabase):
        assert "Index Scan using jobs_pkey" in claim, claim


async def test_reports_and_reads_planned_once_find_their_jobs_by_key(own_db: Database):
    """The direct pool plans its single statements once, for any values (ADR 0009): in
    a store of many jobs, a batch of reports and a batch of reads still find each job
    by its key, never by a walk of the table."""
    if not isinstance(own_db, PostgresDatabase):
        pytest.skip("SQLite has no plan cache: it plans each statement as it runs")
    await _backlog(own_db, finished=3000, unread=3000)
    stored = [_row(number, UNREAD) for number in (3000, 3001)]  # two unread jobs, as read
    reports = columns_of(
        [
            {
                "ulid": row["ulid"],
                "queue": str(Queue.PRIMARY),
                "status": COMPLETE,
                "seconds": UNKNOWN_SECONDS,
                "at_ms": 1_790_000_000_001,
                "source": "site",
                "site": SITE,
                "data": "{}",
                **{f"was_{name}": row[name] for queue in Queue for name in queue_columns(queue)},
            }
            for row in stored
        ]
    )
    ulids = [row["ulid"] for row in stored]
    change = await _plan_as_run(
        own_db, _CHANGE_ON_POSTGRESQL, {**reports, "topic": "job"}, alone=True
    )
    read = await _plan_as_run(own_db, _GET_JOBS_ON_POSTGRESQL, {"ulids": ulids}, alone=True)
    for plan in (change, read):
        assert "jobs_pkey" in plan, plan
        assert "Seq Scan on jobs" not in plan, plan
