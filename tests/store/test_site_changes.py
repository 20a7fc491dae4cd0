"""store/site_changes.py on both backends: every change to the sites or keys, by another
process or by an operator's own SQL, changes the version; on PostgreSQL nothing may be
kept while the listening connection is down, and following resumes when it is back."""

import asyncio
import time

import sqlalchemy as sa

from obsrelay.store import sites as queries
from obsrelay.store.database import Database, PostgresDatabase, Statement
from obsrelay.store.site_changes import LISTENER_NAME, SiteChanges, follow_site_changes
from tests.conftest import migrated
from tests.servers import fresh_postgres_database

WAIT_SECONDS = 10.0


async def version_when(changes: SiteChanges, ready) -> int | None:
    """The version, once `ready(version)` holds (PostgreSQL's notices take a moment)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        version = await changes.version()
        if ready(version) or time.monotonic() > deadline:
            return version
        await asyncio.sleep(0.01)


async def test_each_change_from_elsewhere_changes_the_version(database_url: str, db, site):
    changes = follow_site_changes(db)
    try:
        before = await version_when(changes, lambda version: version is not None)
        assert before is not None
        key = queries.KeyRow(f"k-{site}", site, "hash", 1, None)
        delete_key = sa.text("DELETE FROM site_keys WHERE key_id = :key_id")
        # Another process's connections: the command line's, another server's.
        async with migrated(database_url) as elsewhere:
            for change in (
                lambda conn: queries.register(conn, site, 1, "test"),
                lambda conn: queries.insert_key(conn, key),
                lambda conn: queries.revoke_key(conn, site, key.key_id, 2),
                # An operator's own SQL is announced too.
                lambda conn: conn.execute(delete_key, {"key_id": key.key_id}),
            ):
                await elsewhere.write(change)
                after = await version_when(changes, lambda version, b=before: version != b)
                assert after is not None and after != before
                before = after
            # A write elsewhere that touches neither changes nothing.
            await elsewhere.write(lambda conn: conn.execute(sa.text("SELECT 1")))
            assert await changes.version() == before
    finally:
        await changes.close()


async def test_each_change_by_this_process_changes_the_version(db: Database, site: str):
    changes = follow_site_changes(db)
    try:
        before = await version_when(changes, lambda version: version is not None)
        key = queries.KeyRow(f"k-{site}", site, "hash", 1, None)
        # Another write by this process first: it leaves the version as it was.
        await db.write(lambda conn: conn.execute(sa.text("DELETE FROM claims WHERE 1 = 0")))
        assert await changes.version() == before
        for change in (
            lambda conn: queries.register(conn, site, 1, "test"),
            lambda conn: queries.insert_key(conn, key),
            lambda conn: queries.revoke_key(conn, site, key.key_id, 2),
        ):
            await db.write(change)
            after = await version_when(changes, lambda version, b=before: version != b)
            assert after is not None and after != before
            before = after
    finally:
        await changes.close()


def test_on_postgresql_nothing_is_kept_while_not_listening():
    # A database of this test alone: the listener to end is found by its database's name.
    with fresh_postgres_database() as url:
        asyncio.run(_nothing_is_kept_while_not_listening(url))


async def _nothing_is_kept_while_not_listening(url: str) -> None:
    async with migrated(url) as db:
        assert isinstance(db, PostgresDatabase)
        changes = follow_site_changes(db)
        try:
            before = await version_when(changes, lambda version: version is not None)
            assert before is not None
            # The listening connection ends (a restart of PostgreSQL, an idle timeout).
            terminate = Statement(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                )
            )
            assert [row[0] for row in await db.run(terminate, {"name": LISTENER_NAME})] == [True]
            assert await version_when(changes, lambda version: version is None) is None
            # Back within a second or so, and what was kept before counts no more.
            again = await version_when(changes, lambda version: version is not None)
            assert again is not None and again != before
        finally:
            await changes.close()


async def test_closing_stops_following(db: Database):
    changes = follow_site_changes(db)
    await version_when(changes, lambda version: version is not None)
    await changes.close()
    await changes.close()  # twice is harmless
    if isinstance(db, PostgresDatabase):
        # No longer listening: nothing may be kept on what it would have heard.
        assert await changes.version() is None
