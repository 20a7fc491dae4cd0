"""How transactions run on each backend: isolation of failures, SQLite's lock handling, and
the migrations, which must build exactly the schema that store/schema.py declares."""

import asyncio
import sqlite3
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from obsrelay.store.database import (
    _DIRECT_POOL_SIZE,
    Database,
    DatabaseUnavailable,
    Outage,
    PostgresDatabase,
    open_database,
)
from obsrelay.store.schema import jobs, metadata


async def test_the_migrations_build_the_declared_schema(db: Database):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def differences(conn: sa.Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    assert await db.read(differences) == []


def _count(site: str):
    def count(conn: sa.Connection) -> int:
        query = sa.select(sa.func.count()).select_from(jobs).where(jobs.c.site == site)
        return conn.execute(query).scalar_one()

    return count


def _insert(ulid: str, site: str):
    def insert(conn: sa.Connection) -> str:
        conn.execute(
            jobs.insert(),
            {
                "ulid": ulid,
                "site": site,
                "created_ms": 0,
                "device_type": "d",
                "device_instance": "i",
                "action": "a",
                "required_params": {},
                "optional_params": {},
                "user_id": "u",
                "user_name": "u",
                "user_roles": [],
                "primary_status": "UNREAD",
                "primary_seconds": -1,
                "primary_updated_ms": 0,
                "alternate_status": "UNREAD",
                "alternate_seconds": -1,
                "alternate_updated_ms": 0,
            },
        )
        return ulid

    return insert


async def test_a_failing_transaction_leaves_concurrent_ones_alone(db: Database, site: str):
    def fail_after_insert(conn: sa.Connection) -> None:
        _insert(f"{site[-10:]}FAIL0000000000000"[:26], site)(conn)
        raise RuntimeError("boom")

    ulids = [f"{site[-10:]}{i:016d}"[:26] for i in range(5)]
    results = await asyncio.gather(
        *(db.write(_insert(ulid, site)) for ulid in ulids[:3]),
        db.write(fail_after_insert),
        *(db.write(_insert(ulid, site)) for ulid in ulids[3:]),
        return_exceptions=True,
    )
    assert results[:3] + results[4:] == ulids
    assert isinstance(results[3], RuntimeError)
    assert await db.read(_count(site)) == 5
    # A duplicate key fails alone too, and the database stays usable.
    outcomes = await asyncio.gather(
        db.write(_insert(ulids[0], site)),
        db.write(_insert(f"{site[-10:]}{99:016d}"[:26], site)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], sa.exc.IntegrityError)
    assert isinstance(outcomes[1], str)
    assert await db.read(_count(site)) == 6


async def test_sqlite_waits_for_another_process_lock_without_blocking_the_loop(tmp_path, site):
    path = tmp_path / "locked.db"
    db = open_database(f"sqlite:///{path}")
    await db.upgrade()
    try:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        released = threading.Event()

        def release_later() -> None:
            released.wait(5)
            other.execute("COMMIT")

        threading.Thread(target=release_later, daemon=True).start()
        write = asyncio.create_task(db.write(_insert(f"{site[-10:]}{1:016d}"[:26], site)))
        await asyncio.sleep(0.2)
        assert not write.done(), "the write should wait for the lock"
        # Meanwhile the loop runs, and reads are answered.
        assert await db.read(_count(site)) == 0
        released.set()
        assert await asyncio.wait_for(write, 10)
        assert await db.read(_count(site)) == 1
        # After the lock is gone, writes take the fast path again.
        await db.write(_insert(f"{site[-10:]}{2:016d}"[:26], site))
        assert await db.read(_count(site)) == 2
        other.close()
    finally:
        await db.close()


async def test_a_cancelled_caller_before_commit_stores_nothing(tmp_path, site):
    db = open_database(f"sqlite:///{tmp_path / 'cancel.db'}")
    await db.upgrade()
    try:
        task = asyncio.create_task(db.write(_insert(f"{site[-10:]}{3:016d}"[:26], site)))
        await asyncio.sleep(0)  # queued for the next group commit
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)
        assert await db.read(_count(site)) == 0
    finally:
        await db.close()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path):
    """A database of its own, for a test that takes the schema back to an older revision."""
    from tests.servers import fresh_postgres_database

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


async def test_claims_stored_as_history_sources_move_to_their_own_table(empty_database_url):
    """Migration 0007: "claim:<id>" history sources (0004-0006) become rows of `claims`."""
    from obsrelay.bus import MemoryBus
    from obsrelay.domain.jobs import Queue
    from obsrelay.services.jobs import JobService
    from obsrelay.services.stream import EventLog
    from tests.helpers import new_job

    db = open_database(empty_database_url)
    await db.upgrade()
    site = "migrated"
    await db.write(_insert("01HZZZZZZZZZZZZZZZZZZZZZZ0", site))
    await db.write(_insert("01HZZZZZZZZZZZZZZZZZZZZZZ1", site))

    await db.downgrade("0006")

    def add_0006s_rows(conn: sa.Connection) -> None:
        history = sa.text(
            "INSERT INTO job_history (job_ulid, at_ms, queue, status, seconds_until_complete, "
            "source) VALUES (:ulid, 5, :queue, 'RECEIVED', -1, :source)"
        )
        conn.execute(
            history,
            {"ulid": "01HZZZZZZZZZZZZZZZZZZZZZZ0", "queue": "primary", "source": "claim:attempt-1"},
        )
        conn.execute(
            history, {"ulid": "01HZZZZZZZZZZZZZZZZZZZZZZ1", "queue": "alternate", "source": "site"}
        )

    await db.write(add_0006s_rows)
    await db.close()
    db = open_database(empty_database_url)
    await db.upgrade()
    try:
        service = JobService(db, EventLog(db, MemoryBus()), expiry_seconds=0)
        retried = await service.claim(site, Queue.PRIMARY, claim_id="attempt-1")
        assert [job.ulid for job in retried] == ["01HZZZZZZZZZZZZZZZZZZZZZZ0"]
        _, history = await service.find("01HZZZZZZZZZZZZZZZZZZZZZZ0")
        assert [entry.source for entry in history if entry.status == "RECEIVED"] == ["site"]
        # New claims are remembered in the new table.
        fresh = await service.submit(new_job("migrated-2"))
        taken = await service.claim("migrated-2", Queue.PRIMARY, claim_id="attempt-2")
        assert [job.ulid for job in taken] == [fresh.job.ulid]
        again = await service.claim("migrated-2", Queue.PRIMARY, claim_id="attempt-2")
        assert [job.ulid for job in again] == [fresh.job.ulid]
        other_queue = await service.claim("migrated-2", Queue.ALTERNATE, claim_id="attempt-2")
        assert [job.ulid for job in other_queue] == [fresh.job.ulid]  # a claim of its own
    finally:
        await db.close()


async def test_stream_events_in_the_legacy_form_are_expired_and_numbering_goes_on(
    empty_database_url,
):
    """Migration 0008: stored events of the hosted wire form are deleted; the heads stay."""
    from obsrelay.bus import MemoryBus
    from obsrelay.services.messages import MessageService
    from obsrelay.services.stream import TOPIC_MESSAGE, EventLog

    db = open_database(empty_database_url)
    await db.upgrade()
    site = "migrated"

    await db.downgrade("0007")

    def add_0007s_rows(conn: sa.Connection) -> None:
        EventLog.append(conn, site, "jobs", ['{"statusId":"UNREAD#X"}'], 5)
        EventLog.append(conn, site, "userstatus", ['{"log_level":"info"}'], 5)

    await db.write(add_0007s_rows)
    await db.close()
    db = open_database(empty_database_url)
    await db.upgrade()
    try:
        events = EventLog(db, MemoryBus())
        assert await events.read_after(site, 0) == []
        assert await events.head(site) == 2
        await MessageService(db, events).post(site, "after the upgrade", "info", None)
        (event,) = await events.read_after(site, 0)
        assert (event.seq, event.topic) == (3, TOPIC_MESSAGE)
    finally:
        await db.close()


async def test_the_job_history_keeps_its_rows_without_a_key_to_its_job(empty_database_url):
    """Migration 0012: job_history loses its foreign key to jobs (on SQLite by building
    the table again), and keeps every row, in order, on both backends."""
    from obsrelay.bus import MemoryBus
    from obsrelay.domain.jobs import Queue
    from obsrelay.services.jobs import JobService
    from obsrelay.services.stream import EventLog
    from tests.helpers import new_job

    def keys(conn: sa.Connection) -> list[str]:
        return [key["referred_table"] for key in sa.inspect(conn).get_foreign_keys("job_history")]

    def service_on(db: Database) -> JobService:
        return JobService(db, EventLog(db, MemoryBus()), expiry_seconds=0)

    async def steps(db: Database, ulid: str) -> list[str]:
        _, history = await service_on(db).find(ulid)
        return [entry.status for entry in history if entry.queue is Queue.PRIMARY]

    db = open_database(empty_database_url)
    await db.upgrade()
    await db.downgrade("0011")
    assert await db.read(keys) == ["jobs"]
    service = service_on(db)
    job = (await service.submit(new_job("migrated"))).job
    await service.claim("migrated", Queue.PRIMARY)
    await service.report_status("migrated", job.ulid, Queue.PRIMARY, "EXPOSING", 30)
    await db.close()

    db = open_database(empty_database_url)
    await db.upgrade()
    try:
        assert await db.read(keys) == []
        assert await steps(db, job.ulid) == ["UNREAD", "RECEIVED", "EXPOSING"]
        await service_on(db).report_status("migrated", job.ulid, Queue.PRIMARY, "COMPLETE")
        assert await steps(db, job.ulid) == ["UNREAD", "RECEIVED", "EXPOSING", "COMPLETE"]
    finally:
        await db.close()


def test_an_outage_ends_only_with_a_success_that_began_after_it(caplog):
    # A request that was already past the database when it went away may succeed after the
    # first failure; it says nothing about now, and must not log a recovery (and a new outage).
    outage = Outage()
    before = time.monotonic()
    outage.failed(OSError("connection was closed in the middle of operation"))
    outage.succeeded(before)
    assert outage.started is not None and outage.refused == 1
    outage.succeeded(time.monotonic())
    assert outage.started is None and outage.refused == 0
    assert [record.levelname for record in caplog.records] == ["ERROR", "WARNING"]


async def test_a_direct_transaction_that_fails_stores_nothing_and_gives_its_connection_back(
    own_db: Database,
):
    """`PostgresDatabase.in_transaction` (a claim's) rolls back what `fn` wrote when it
    raises, raising what `fn` raised; a connection lost inside it is the database's
    outage; either way the next transaction runs."""
    if not isinstance(own_db, PostgresDatabase):
        pytest.skip("only PostgreSQL has a direct pool")
    await own_db.in_transaction(lambda conn: conn.execute("CREATE TABLE scratch (n int)"))

    class Refused(Exception):
        pass

    async def write_then_refuse(conn: Any) -> None:
        await conn.execute("INSERT INTO scratch VALUES (1)")
        raise Refused

    async def write_then_lose_the_connection(conn: Any) -> None:
        await conn.execute("INSERT INTO scratch VALUES (2)")
        await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(Refused):
        await own_db.in_transaction(write_then_refuse)
    with pytest.raises(DatabaseUnavailable):
        await own_db.in_transaction(write_then_lose_the_connection)
    # Every connection of the pool, all at once: each one is usable, none holds a write.
    stored = await asyncio.gather(
        *(
            own_db.in_transaction(lambda conn: conn.fetchval("SELECT count(*) FROM scratch"))
            for _ in range(_DIRECT_POOL_SIZE)
        )
    )
    assert stored == [0] * _DIRECT_POOL_SIZE
