"""The database connection: engine set-up per backend, read and write transactions, migrations.

SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE` for write transactions, so two
writers queue for the lock instead of deadlocking when a read transaction tries to
become a write one. Within one process, writers also queue on an asyncio lock, which
is cheaper than SQLite's busy-wait. PostgreSQL relies on row locks (`FOR UPDATE`,
`SKIP LOCKED`) in the queries themselves.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from obsrelay.config import async_database_url

_WRITE_OPTION = "obsrelay_write"
_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant: all obsrelay processes take this advisory lock to migrate one at a time.
_MIGRATION_LOCK_KEY = 0x6F627372


class Database:
    """One database, shared by every request of one server process."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._write_lock: asyncio.Lock | None = None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back on error."""
        if not self.is_sqlite:
            async with self.engine.begin() as conn:
                yield conn
            return
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock, self.engine.connect() as conn:
            await conn.execution_options(**{_WRITE_OPTION: True})
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; on SQLite each statement is its own snapshot."""
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        """Raises if the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def upgrade(self) -> None:
        """Creates or migrates the schema to the newest revision; safe from several processes."""
        async with self.write() as conn:
            if not self.is_sqlite:
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            await conn.run_sync(_alembic_upgrade)

    async def close(self) -> None:
        await self.engine.dispose()


def _alembic_upgrade(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def open_database(url: str) -> Database:
    """A Database for a plain URL (sqlite:///path.db, postgresql://user@host/db)."""
    sa_url = make_url(async_database_url(url))
    if sa_url.get_backend_name() == "sqlite":
        return Database(_sqlite_engine(sa_url))
    engine = create_async_engine(sa_url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    return Database(engine)


def _sqlite_engine(url: sa.URL) -> AsyncEngine:
    path = url.database or ""
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # A fixed pool: opening an aiosqlite connection starts a thread, too dear per request.
    engine = create_async_engine(
        url,
        connect_args={"timeout": 30},
        pool_size=8,
        max_overflow=0,
        pool_timeout=60,
        # Writes always end in COMMIT or ROLLBACK inside `Database.write`, and reads open
        # no transaction, so a returned connection has nothing to reset.
        pool_reset_on_return=None,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let our "begin" hook, not the driver, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # A read runs in autocommit: each SELECT sees a consistent snapshot by itself, and
        # no BEGIN/ROLLBACK round trips to the driver's thread are spent on it.
        if conn.get_execution_options().get(_WRITE_OPTION, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
