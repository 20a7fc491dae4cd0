"""The database connection: how a transaction runs on each backend, and migrations.

Callers hand a transaction to `Database.write(fn)` or `Database.read(fn)` as a plain
function of a SQLAlchemy `Connection`; the queries in this package are such
functions. The same function runs on both backends:

- PostgreSQL: on a pooled asyncpg connection, through `AsyncConnection.run_sync`.
  Concurrency comes from row locks in the queries (`FOR UPDATE`, `SKIP LOCKED`).
  Each round trip to the server counts (an empty poll is a few of them), so a read
  runs without BEGIN and ROLLBACK, each statement its own snapshot as on SQLite, and
  a pooled connection is checked with a ping only when it has lain idle, not before
  every transaction. The hottest writes skip SQLAlchemy's execution altogether:
  `PostgresDatabase.run` sends one statement, compiled once (`Statement`), on an
  asyncpg pool of its own, in autocommit, where a statement is its own transaction
  (ADR 0009).
- SQLite: on one connection in the event loop's own thread. SQLite answers an indexed
  read in microseconds and a write transaction in about 0.2 ms, far less than a hop to
  a worker thread costs, so it is called directly. Writes are group-committed: the
  transactions that arrive in one turn of the event loop run in a single
  `BEGIN IMMEDIATE ... COMMIT`, each inside its own SAVEPOINT so that one failing
  leaves the others intact, and none is answered before the COMMIT. The loop never
  waits for a lock: when another process holds the database, the work moves to a
  worker thread that waits there (busy timeout) instead. WAL checkpoints, which
  fsync, also run in that thread.

A database that does not answer (refused or lost connections, a lock held past the
busy timeout, a full disk) raises `DatabaseUnavailable` from `read` and `write`, which
the API answers with 503. The outage is logged once when it starts and once when the
next transaction succeeds, with the number of transactions refused in between: a
stopped PostgreSQL under load must not write thousands of tracebacks.
"""

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import asyncpg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.compiler import SQLCompiler

T = TypeVar("T")
Transaction = Callable[[sa.Connection], T]

log = logging.getLogger("obsrelay.store")
# The outage's two lines have a logger of their own: a command that reports a database
# that is away in its own words (obsrelay serve, db upgrade) silences this one.
outage_log = logging.getLogger("obsrelay.store.outage")
_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant: all obsrelay processes take this advisory lock to migrate one at a time.
_MIGRATION_LOCK_KEY = 0x6F627372
_BUSY_TIMEOUT_MS = 30_000
_CHECKPOINT_SECONDS = 1.0
_CLOSE_SECONDS = 2.0
# A server that does not answer a new connection within this is away: the request gets
# its 503 then, not after asyncpg's default of a minute.
_CONNECT_TIMEOUT_SECONDS = 5
# The asyncpg pool of `PostgresDatabase.run`, beside SQLAlchemy's (see open_database).
_DIRECT_POOL_SIZE = 16
# A pooled PostgreSQL connection idle longer than this is pinged before use: one the
# server dropped meanwhile (a restart) is replaced instead of failing a request. One
# in use within this time was working a moment ago.
_PING_AFTER_IDLE_SECONDS = 1.0


class DatabaseUnavailable(Exception):
    """The database did not answer; the request may be tried again shortly."""


# Messages of SQLite errors that mean the database cannot be used now, not a bug.
_SQLITE_UNAVAILABLE = ("locked", "busy", "disk i/o", "unable to open", "disk is full")


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` says the database is not answering (rather than a bug or bad data)."""
    if isinstance(error, DatabaseUnavailable | OSError | TimeoutError | sa.exc.TimeoutError):
        return True
    if isinstance(error, sa.exc.DBAPIError) and (
        error.connection_invalidated or isinstance(error, sa.exc.InterfaceError)
    ):
        return True
    original = error.orig if isinstance(error, sa.exc.DBAPIError) else error
    if isinstance(original, sqlite3.OperationalError):
        return any(words in str(original).lower() for words in _SQLITE_UNAVAILABLE)
    if isinstance(error, sa.exc.DBAPIError):
        name = type(original).__name__ if original is not None else ""
        return isinstance(error, sa.exc.OperationalError) or name in _ASYNCPG_UNAVAILABLE
    # Raised by asyncpg itself, on `PostgresDatabase.run`'s connections.
    return type(error).__name__ in _ASYNCPG_UNAVAILABLE


# asyncpg's errors for a server that refuses connections, is shutting down, or dropped ours.
_ASYNCPG_UNAVAILABLE = {
    "CannotConnectNowError",
    "AdminShutdownError",
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "TooManyConnectionsError",
}


class Outage:
    """Logs an outage once when it starts and once when it ends, counting refusals."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.refused = 0
        self.failures = 0  # every transaction refused, since start (for the metrics)

    def failed(self, error: BaseException) -> None:
        self.refused += 1
        self.failures += 1
        if self.started is None:
            self.started = time.monotonic()
            outage_log.error(
                "the database is not answering (%s); answering 503 until it is back",
                _one_line(error),
            )

    def succeeded(self, began: float) -> None:
        """Ends the outage, unless the request that succeeded `began` before it started: such a
        request may have finished its work just before the cut, and says nothing about now."""
        if self.started is not None and began > self.started:
            outage_log.warning(
                "the database is answering again after %.1f s; %d requests were refused",
                time.monotonic() - self.started,
                self.refused,
            )
            self.started, self.refused = None, 0


def _one_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error) or type(error).__name__
    return text.splitlines()[0][:200]


# The dialects that `Statement` compiles for: asyncpg's `$1`, SQLite's `?`.
_DIALECTS = {
    "postgresql": make_url("postgresql+asyncpg://").get_dialect()(),
    "sqlite": make_url("sqlite://").get_dialect()(),
}


class Statement:
    """One statement for the driver itself, past SQLAlchemy's execution: compiled once
    per backend, to its text with positional parameters and the order of its named
    ones. Built from SQLAlchemy's constructs or text, like every other query; run by
    `Database.fetch` (both backends) or `PostgresDatabase.run`."""

    __slots__ = ("_compiled", "_statement")

    def __init__(self, statement: sa.Executable) -> None:
        assert isinstance(statement, sa.ClauseElement)
        self._statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def sql(self, dialect: str) -> str:
        return self._for(dialect).sql

    def arguments(self, dialect: str, params: dict[str, Any]) -> list[Any]:
        compiled = self._for(dialect)
        return [params[name] if name in params else compiled.fixed[name] for name in compiled.names]

    def run_in(self, conn: sa.Connection, params: dict[str, Any]) -> list[Any]:
        """Runs it with the SQLite driver of `conn`, inside the transaction that `conn`
        is in (a `Database.write` on SQLite): its rows, as tuples."""
        driver = _driver_of(conn)
        return list(driver.execute(self.sql("sqlite"), self.arguments("sqlite", params)))

    async def fetch_on(self, conn: asyncpg.Connection, params: dict[str, Any]) -> list[Any]:
        """Runs it on an asyncpg connection: its rows (asyncpg's Records)."""
        rows: list[Any] = await conn.fetch(
            self.sql("postgresql"), *self.arguments("postgresql", params)
        )
        return rows

    def _for(self, dialect: str) -> "_Compiled":
        if dialect not in self._compiled:
            compiled = self._statement.compile(dialect=_DIALECTS[dialect])
            assert isinstance(compiled, SQLCompiler)
            self._compiled[dialect] = _Compiled(
                str(compiled),
                tuple(compiled.positiontup or ()),
                # Values the construct holds itself (a LIMIT's, say), not passed by callers.
                {name: bind.value for name, bind in compiled.binds.items() if not bind.required},
            )
        return self._compiled[dialect]


class _Compiled(NamedTuple):
    sql: str
    names: tuple[str, ...]
    fixed: dict[str, Any]


class Database:
    """One database, shared by every request of one server process."""

    dialect: str
    outage: Outage

    async def read(self, fn: Transaction[T]) -> T:
        """Runs `fn` for reading (no writes; on SQLite each statement is its own snapshot)."""
        return await self._guarded(self._read(fn))

    async def write(self, fn: Transaction[T]) -> T:
        """Runs `fn` in a write transaction: committed when it returns, rolled back if it raises."""
        return await self._guarded(self._write(fn))

    async def _guarded(self, transaction: Awaitable[T]) -> T:
        """`transaction`'s result; DatabaseUnavailable when the database did not answer."""
        began = time.monotonic()
        try:
            result = await transaction
        except Exception as error:
            self._raise_unavailable_for(error)
            raise
        if self.outage.started is not None:
            self.outage.succeeded(began)
        return result

    def _raise_unavailable_for(self, error: Exception) -> None:
        """Raises DatabaseUnavailable (and notes the outage) when `error` says so."""
        if is_unavailable(error):
            self.outage.failed(error)
            if isinstance(error, DatabaseUnavailable):
                raise error
            raise DatabaseUnavailable() from error

    async def fetch(self, statement: Statement, params: dict[str, Any]) -> list[Mapping[str, Any]]:
        """Reads with one statement, run by the driver itself: its rows, by column name,
        JSON columns as text. For the reads of every request, where SQLAlchemy's
        execution would cost more than the database's answer."""
        return await self._guarded(self._fetch(statement, params))

    async def _read(self, fn: Transaction[T]) -> T:
        raise NotImplementedError

    async def _fetch(self, statement: Statement, params: dict[str, Any]) -> list[Mapping[str, Any]]:
        raise NotImplementedError

    async def _write(self, fn: Transaction[T]) -> T:
        raise NotImplementedError

    async def ping(self) -> None:
        """Raises if the database does not answer."""
        await self.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())

    async def upgrade(self) -> None:
        """Creates or migrates the schema to the newest revision; safe from several processes."""
        await self.migrate(lambda config: command.upgrade(config, "head"))

    async def downgrade(self, revision: str) -> None:
        """Migrates the schema back to `revision` (each migration's `downgrade`)."""
        await self.migrate(lambda config: command.downgrade(config, revision))

    async def migrate(self, step: Callable[[Config], None]) -> None:
        """Runs an Alembic command on a connection of its own, in one transaction."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


# How the direct pool's statements are planned (ADR 0009). Its single statements are the
# same few shapes run over and over, most of them batches of a varying size: PostgreSQL's
# automatic mode re-plans those at every run (about 0.5 ms for a change batch, as long
# as the run itself), because a plan made for an array of any size looks dearer than
# one made for the array at hand. They are planned once instead. A transaction's
# statements (a claim) are planned for their values at each run: a claim's LIMIT
# decides whether reading the index of unread jobs in order beats a walk of the table.
_PLANNED_ONCE = {"plan_cache_mode": "force_generic_plan"}
_BEGIN_PLANNED_FOR_VALUES = "BEGIN; SET LOCAL plan_cache_mode = force_custom_plan"


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset of a connection given back to the pool, a round trip (RESET
    ALL, UNLISTEN, ...) after each statement: obsrelay's statements leave no session
    state behind. (asyncpg still rolls back a transaction left open.)"""


class PostgresDatabase(Database):
    """PostgreSQL through asyncpg, with two connection pools: SQLAlchemy's for the
    transactions, and a plain asyncpg pool for `run`'s single statements."""

    dialect = "postgresql"

    def __init__(self, engine: AsyncEngine, direct_pool_size: int = _DIRECT_POOL_SIZE) -> None:
        self.engine = engine
        # Reads run in autocommit: no BEGIN and ROLLBACK around them.
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._direct_pool_size = direct_pool_size
        self._pool: asyncpg.Pool | None = None
        self._pool_opening = asyncio.Lock()
        self.outage = Outage()

    async def run(self, statement: Statement, params: dict[str, Any]) -> list[asyncpg.Record]:
        """Runs one statement on its own, in autocommit (a statement is a transaction of its
        own), outside SQLAlchemy: its rows, as asyncpg gives them. JSON goes in and comes
        out as text."""
        return await self._guarded(self._run(statement, params))

    async def _run(self, statement: Statement, params: dict[str, Any]) -> list[asyncpg.Record]:
        pool = self._pool or await self._open_pool()
        async with pool.acquire() as conn:
            return await statement.fetch_on(conn, params)

    async def _fetch(self, statement: Statement, params: dict[str, Any]) -> list[Mapping[str, Any]]:
        return await self._run(statement, params)

    async def in_transaction(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Runs `fn` on a connection of the direct pool between BEGIN and COMMIT, or
        ROLLBACK if it raises: for a write whose statements depend on each other's
        results, each run with `Statement.fetch_on`. Its statements are planned for
        their values at each run (`_BEGIN_PLANNED_FOR_VALUES`)."""
        return await self._guarded(self._in_transaction(fn))

    async def _in_transaction(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        pool = self._pool or await self._open_pool()
        async with pool.acquire() as conn:
            # One round trip, as a BEGIN alone would be.
            await conn.execute(_BEGIN_PLANNED_FOR_VALUES)
            try:
                result = await fn(conn)
            except BaseException:
                # What `fn` raised is the answer; a connection too broken to roll back is
                # dropped by the pool when given back.
                with contextlib.suppress(Exception):
                    if not conn.is_closed():
                        await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")
            return result

    async def connect(self, application_name: str) -> asyncpg.Connection:
        """A connection of the caller's own, outside both pools (one that LISTENs), named in
        pg_stat_activity as `application_name`."""
        connection: asyncpg.Connection = await asyncpg.connect(
            self._driver_url(),
            timeout=_CONNECT_TIMEOUT_SECONDS,
            server_settings={"application_name": application_name},
        )
        return connection

    def _driver_url(self) -> str:
        return self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def _open_pool(self) -> asyncpg.Pool:
        async with self._pool_opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._driver_url(),
                    # No floor: asyncpg would restore one in the background, logging a
                    # traceback a second while the server is away (the outage is logged
                    # once, by Outage). Connections are opened as requests need them and
                    # kept while used.
                    min_size=0,
                    max_size=self._direct_pool_size,
                    timeout=_CONNECT_TIMEOUT_SECONDS,
                    reset=_nothing_to_reset,
                    server_settings=_PLANNED_ONCE,
                )
            return self._pool

    async def _read(self, fn: Transaction[T]) -> T:
        async with self._reader.connect() as conn:
            return await conn.run_sync(fn)

    async def _write(self, fn: Transaction[T]) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    async def migrate(self, step: Callable[[Config], None]) -> None:
        def migrate(conn: sa.Connection) -> None:
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
            step(_alembic_config(conn))

        await self.write(migrate)

    async def close(self) -> None:
        # A pooled connection to a server that went away can take seconds each to close
        # politely: bounded, then dropped, so that a restart after an outage is prompt.
        try:
            await asyncio.wait_for(self.engine.dispose(), _CLOSE_SECONDS)
            if self._pool is not None:
                await asyncio.wait_for(self._pool.close(), _CLOSE_SECONDS)
        except TimeoutError:
            log.warning("the database did not answer while closing; its connections were dropped")
            await self.engine.dispose(close=False)
            if self._pool is not None:
                self._pool.terminate()


class _Pending:
    """A write transaction waiting for the next group commit."""

    __slots__ = ("fn", "future")

    def __init__(self, fn: Transaction[Any], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future


class SQLiteDatabase(Database):
    """A SQLite file: WAL, group commit on the event loop, a worker thread for waiting."""

    dialect = "sqlite"

    def __init__(self, url: sa.URL) -> None:
        self.url = url
        # The loop's connection must never wait; the worker's may.
        self._engine = _sqlite_engine(url, busy_timeout_ms=0)
        self._worker_engine = _sqlite_engine(url, busy_timeout_ms=_BUSY_TIMEOUT_MS)
        self._conn: sa.Connection | None = None
        self._worker_conn: sa.Connection | None = None
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="obsrelay-sqlite")
        self._pending: list[_Pending] = []
        self._flush_scheduled = False
        self._checkpointer: asyncio.Task[None] | None = None
        self._closed = False
        self.outage = Outage()

    def _loop_conn(self) -> sa.Connection:
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def _loop_driver(self) -> sqlite3.Connection:
        return _driver_of(self._loop_conn())

    def writes_seen(self) -> tuple[int, int] | None:
        """A pair that moves after anything is written to the file: by the loop's
        connection (its `total_changes`, which counts what triggers change too) or by any
        other connection, of this process or another (`PRAGMA data_version`). Cheaper
        than any read of a table. None when SQLite cannot tell (the file is failing: the
        reads that follow report that)."""
        try:
            driver = self._loop_driver()
            [(data_version,)] = driver.execute("PRAGMA data_version").fetchall()
        except (sa.exc.SQLAlchemyError, sqlite3.Error):
            return None
        return driver.total_changes, int(data_version)

    def _worker_connection(self) -> sa.Connection:
        if self._worker_conn is None:
            self._worker_conn = self._worker_engine.connect()
        return self._worker_conn

    async def _read(self, fn: Transaction[T]) -> T:
        self._start_checkpointer()
        conn = self._loop_conn()
        try:
            return _run_read(conn, fn)
        except (sa.exc.OperationalError, sqlite3.OperationalError) as error:
            if not _is_busy(error):
                raise
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._worker, lambda: _run_read(self._worker_connection(), fn)
        )

    async def _fetch(self, statement: Statement, params: dict[str, Any]) -> list[Mapping[str, Any]]:
        sql, arguments = statement.sql(self.dialect), statement.arguments(self.dialect, params)

        def fetch(driver: sqlite3.Connection) -> list[Mapping[str, Any]]:
            cursor = driver.execute(sql, arguments)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        # Straight on the loop's connection, without SQLAlchemy's bookkeeping: SQLite in
        # autocommit begins no transaction for a read. Busy: the worker waits, as `_read`.
        self._start_checkpointer()
        try:
            return fetch(self._loop_driver())
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        return await self._read(lambda conn: fetch(_driver_of(conn)))

    async def _write(self, fn: Transaction[T]) -> T:
        self._start_checkpointer()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Pending(fn, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        """Commits every pending write transaction together."""
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        batch = [item for item in batch if not item.future.cancelled()]
        if not batch:
            return
        try:
            outcomes = _run_group(self._loop_conn(), batch)
        except (sa.exc.OperationalError, sqlite3.OperationalError) as error:
            if not _is_busy(error):
                _fail_all(batch, error)
                return
            # Another process holds the write lock: wait for it in the worker thread.
            loop = asyncio.get_running_loop()
            worker = loop.run_in_executor(
                self._worker, lambda: _run_group(self._worker_connection(), batch)
            )
            worker.add_done_callback(lambda done: _settle_from_worker(batch, done))
            return
        except Exception as error:
            _fail_all(batch, error)
            return
        _settle(batch, outcomes)

    def _start_checkpointer(self) -> None:
        if self._checkpointer is None and not self._closed:
            self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoint_forever())

    async def _checkpoint_forever(self) -> None:
        """Moves the WAL into the database file now and then, off the event loop."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_CHECKPOINT_SECONDS)
            try:
                await loop.run_in_executor(self._worker, self._checkpoint, "PASSIVE")
            except Exception as error:
                log.warning("SQLite checkpoint failed: %s", error)

    def _checkpoint(self, mode: str) -> None:
        conn = self._worker_connection()
        conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})")
        conn.rollback()

    async def migrate(self, step: Callable[[Config], None]) -> None:
        def migrate() -> None:
            conn = self._worker_connection()
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                step(_alembic_config(conn))
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                conn.rollback()
                raise
            conn.exec_driver_sql("COMMIT")
            conn.commit()

        await asyncio.get_running_loop().run_in_executor(self._worker, migrate)

    async def close(self) -> None:
        self._closed = True
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
        if self._pending:
            self._flush()

        def close_worker() -> None:
            if self._worker_conn is not None:
                with contextlib.suppress(Exception):
                    self._checkpoint("TRUNCATE")
                self._worker_conn.close()
                self._worker_conn = None

        await asyncio.get_running_loop().run_in_executor(self._worker, close_worker)
        self._worker.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._engine.dispose()
        self._worker_engine.dispose()


def _driver_of(conn: sa.Connection) -> sqlite3.Connection:
    """The sqlite3 connection under `conn`, to call SQLite without SQLAlchemy."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _run_read(conn: sa.Connection, fn: Transaction[T]) -> T:
    try:
        return fn(conn)
    finally:
        conn.rollback()  # ends SQLAlchemy's transaction; SQLite had none open


def _run_group(conn: sa.Connection, batch: list[_Pending]) -> list[tuple[bool, Any]]:
    """Runs each transaction of `batch` in its own SAVEPOINT inside one transaction.

    Returns (succeeded, result or exception) per transaction, after the COMMIT.
    Raises if the group cannot begin or commit; then nothing of it is stored.
    The transaction control goes straight to the driver: through SQLAlchemy it would
    cost as much as the transactions' own statements.
    """
    driver = _driver_of(conn)
    driver.execute("BEGIN IMMEDIATE")
    outcomes: list[tuple[bool, Any]] = []
    try:
        for item in batch:
            driver.execute("SAVEPOINT tx")
            try:
                result = item.fn(conn)
            except Exception as error:
                driver.execute("ROLLBACK TO tx")
                driver.execute("RELEASE tx")
                outcomes.append((False, error))
            else:
                driver.execute("RELEASE tx")
                outcomes.append((True, result))
        driver.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            driver.execute("ROLLBACK")
        conn.rollback()
        raise
    conn.commit()  # ends SQLAlchemy's own bookkeeping; SQLite has committed
    return outcomes


def _settle(batch: list[_Pending], outcomes: list[tuple[bool, Any]]) -> None:
    for item, (succeeded, value) in zip(batch, outcomes, strict=True):
        if item.future.done():
            continue
        if succeeded:
            item.future.set_result(value)
        else:
            item.future.set_exception(value)


def _settle_from_worker(batch: list[_Pending], done: "asyncio.Future[Any]") -> None:
    error = done.exception()
    if error is not None:
        _fail_all(batch, error)
    else:
        _settle(batch, done.result())


def _fail_all(batch: list[_Pending], error: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)


def _is_busy(error: Exception) -> bool:
    """Whether SQLite refused because another connection holds a lock."""
    original = error.orig if isinstance(error, sa.exc.DBAPIError) else error
    return isinstance(original, sqlite3.OperationalError) and (
        "locked" in str(original) or "busy" in str(original)
    )


def _sqlite_engine(url: sa.URL, *, busy_timeout_ms: int) -> sa.Engine:
    # Each engine hands out one long-lived connection, so no pool is kept.
    engine = sa.create_engine(
        url, poolclass=NullPool, connect_args={"timeout": 0, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Transactions are begun and ended explicitly (BEGIN IMMEDIATE, SAVEPOINT), not
        # by the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Checkpoints run in the worker thread (see SQLiteDatabase), not inside a commit.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    return engine


def open_database(url: str) -> Database:
    """A Database for a plain URL (sqlite:///path.db, postgresql://user@host/db)."""
    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        # The standard library's driver, on the event loop's thread (see SQLiteDatabase).
        sync_url = sa_url.set(drivername="sqlite")
        path = sync_url.database or ""
        if path and path != ":memory:" and not path.startswith("file:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SQLiteDatabase(sync_url)
    async_url = sa_url.set(drivername="postgresql+asyncpg")
    engine = create_async_engine(
        async_url,
        # Kept open: a connection past the pool size is closed when given back, and
        # opening one (TCP, authentication) costs as much as a dozen requests. With the
        # direct pool's 16 (PostgresDatabase.run), two processes of this size stay within
        # PostgreSQL's default of 100 connections.
        pool_size=16,
        max_overflow=8,
        connect_args={"timeout": _CONNECT_TIMEOUT_SECONDS},
    )
    _ping_when_idle(engine.sync_engine)
    return PostgresDatabase(engine)


def _ping_when_idle(engine: sa.Engine) -> None:
    """Pings a pooled connection at checkout only after it lay idle (SQLAlchemy's
    pool_pre_ping would ping before every transaction: three round trips, as many as
    an empty poll's own work). A failed ping makes the pool open a new connection."""

    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < _PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            raise sa.exc.DisconnectionError(f"an idle connection was lost: {error}") from error
