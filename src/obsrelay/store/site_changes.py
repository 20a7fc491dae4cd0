"""Whether the site registry or the site keys changed since a given moment: a version that
differs after every change, so that what was read of them can be kept until then.

The database announces every change itself (migration 0011): its triggers raise the
version in `site_changes` and, on PostgreSQL, send a notice. That covers changes made
by this process, by another server, by the command line, or by an operator's own SQL.
- SQLite: `version()` reads that row, but only when anything at all was written to
  the file since its last read (`SQLiteDatabase.writes_seen`).
- PostgreSQL: a connection of its own LISTENs for the notices, and `version()` is a
  counter in memory that each notice raises. While that connection is down, and until
  it is back, `version()` is None: nothing may be kept. A heartbeat on it notices a
  connection that died without a word (the notices on it may have been lost) within
  `HEARTBEAT_SECONDS` and a bit.

May touch: the `site_changes` row, and one PostgreSQL connection of its own.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import asyncpg

from obsrelay.store.database import Database, PostgresDatabase, SQLiteDatabase, Statement
from obsrelay.store.schema import site_changes

log = logging.getLogger("obsrelay.store")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

CHANNEL = "obsrelay_site_changes"
# The listening connection's name in pg_stat_activity.
LISTENER_NAME = "obsrelay site changes"
HEARTBEAT_SECONDS = 5.0
RETRY_SECONDS = 1.0

_VERSION = Statement(site_changes.select().with_only_columns(site_changes.c.version))


class SiteChanges:
    """The version of the sites and keys as this process can see it (see the module)."""

    async def version(self) -> int | None:
        """A number that differs after any change; None when changes cannot be followed."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stops following (on PostgreSQL, closes the listening connection)."""


class _StoredVersion(SiteChanges):
    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db
        self._read_after: tuple[int, int] | None = None
        self._version: int | None = None

    async def version(self) -> int | None:
        # The row is read again only if anything at all was written since the last read.
        seen = self._db.writes_seen()
        if seen is None:
            return None
        if seen != self._read_after:
            rows = await self._db.fetch(_VERSION, {})
            self._version = int(rows[0]["version"]) if rows else None
            self._read_after = seen
        return self._version


class _NoticedVersion(SiteChanges):
    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._version = 0
        self._listening = False
        self._said_lost = False
        self._task: asyncio.Task[None] | None = None

    async def version(self) -> int | None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name="site changes")
        return self._version if self._listening else None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _changed(self, *_notice: object) -> None:
        self._version += 1

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                self._say_lost(type(error).__name__)
            except Exception:
                # Not expected: said with its traceback, once, and tried again like the rest.
                if not self._said_lost:
                    log.exception("following site changes failed")
                self._say_lost("an error")
            await asyncio.sleep(RETRY_SECONDS)

    def _say_lost(self, why: str) -> None:
        if not self._said_lost:
            log.warning(
                "not following site changes (%s): site standings are read on every "
                "request until it is back",
                why,
            )
            self._said_lost = True

    async def _listen(self) -> None:
        """Listens until the connection is lost or its heartbeat goes unanswered."""
        conn = await self._db.connect(LISTENER_NAME)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(CHANNEL, self._changed)
            self._changed()  # anything missed while not listening
            self._listening = True
            if self._said_lost:
                log.info("following site changes again")
                self._said_lost = False
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), HEARTBEAT_SECONDS)
                if not lost.is_set():
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), HEARTBEAT_SECONDS)
            raise OSError("the listening connection was closed")
        finally:
            self._listening = False
            self._changed()
            conn.terminate()


class KeptUntilChanged(Generic[K, V]):
    """Values read from the sites or keys, each kept with the version it was read under
    and given again while the version is the same. With `changes` None, or while the
    version is None, every value is read.

    A value is kept only if the version did not move while it was read (the read might
    predate the change), and only if `worth_keeping(value)`: callers keep what exists,
    so that made-up names cannot fill the memory.
    """

    def __init__(self, changes: SiteChanges | None, worth_keeping: Callable[[V], bool]) -> None:
        self._changes = changes
        self._worth_keeping = worth_keeping
        self._kept: dict[K, tuple[int, V]] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        version = await self._version()
        kept = self._kept.get(key)
        if kept is not None and version is not None and kept[0] == version:
            return kept[1]
        value = await read()
        if version is None or not self._worth_keeping(value):
            self._kept.pop(key, None)  # a key deleted since: nothing of it stays
            return value
        if await self._version() == version:
            self._kept[key] = (version, value)
        return value

    async def _version(self) -> int | None:
        return await self._changes.version() if self._changes is not None else None


def follow_site_changes(db: Database) -> SiteChanges:
    """This process's view of the changes to `db`'s sites and keys."""
    if isinstance(db, PostgresDatabase):
        return _NoticedVersion(db)
    assert isinstance(db, SQLiteDatabase)
    return _StoredVersion(db)
