"""Storing user status messages with their events, in as few round trips as the backend
allows (as store/job_writes.py does for jobs).

- PostgreSQL: one statement, sent on asyncpg directly in autocommit. The posts that
  arrive together go in one statement (`store/batching.py`), which takes each site's
  stream numbers once for all of them (ADR 0009). A post's messages are one item of a
  batch: if the batch fails, each post is stored again alone, all or nothing.
- SQLite: the messages and their events (`store/stream.py`), written by the driver in a
  write transaction, which SQLite group-commits with the others of the same moment.
"""

from dataclasses import dataclass

import sqlalchemy as sa

from obsrelay.domain.messages import Message
from obsrelay.store import messages as queries
from obsrelay.store.batching import Batches, columns_of, typed_columns, unnest_cte
from obsrelay.store.database import Database, PostgresDatabase, Statement
from obsrelay.store.schema import messages
from obsrelay.store.stream import append_each_on_postgresql, append_events

_COLUMNS = [column.name for column in messages.c]
_EVENT_COLUMNS = [("data", "text"), ("at_ms", "bigint")]

# New messages, each column an array, and their events.
_INSERT_ON_POSTGRESQL = Statement(
    append_each_on_postgresql(
        f"""{unnest_cte("new", [*typed_columns(messages, _COLUMNS), *_EVENT_COLUMNS])},
        stored_messages AS (
            INSERT INTO messages ({", ".join(_COLUMNS)})
            SELECT {", ".join(_COLUMNS)} FROM new ORDER BY n
        ),
        event AS (SELECT n, site, data, at_ms FROM new)""",
        source="event",
    )
)


_INSERT_ON_SQLITE = Statement(messages.insert())


@dataclass(frozen=True, slots=True)
class _Post:
    """One post's messages, each one's event (JSON text), and the events' time."""

    messages: list[Message]
    data: list[str]
    at_ms: int


class MessageWrites:
    """Stores messages with their events (of `topic`), on either backend."""

    def __init__(self, db: Database, topic: str) -> None:
        self._db = db
        self._postgres = db if isinstance(db, PostgresDatabase) else None
        self._topic = topic
        self._posts = Batches(self._insert_on_postgresql)

    async def insert(self, site: str, batch: list[Message], data: list[str], at_ms: int) -> int:
        """Stores `batch` (messages of `site`, in order) and their events (`data`, one
        per message) together; returns the first event's number."""
        if self._postgres is not None:
            return await self._posts.add(_Post(batch, data, at_ms))

        def store(conn: sa.Connection) -> int:
            for message in batch:
                _INSERT_ON_SQLITE.run_in(conn, queries.message_row(message))
            return append_events(conn, site, self._topic, data, at_ms)

        return await self._db.write(store)

    async def _insert_on_postgresql(self, posts: list[_Post]) -> list[int]:
        assert self._postgres is not None
        rows = [
            {**queries.message_row(message), "data": data, "at_ms": post.at_ms}
            for post in posts
            for message, data in zip(post.messages, post.data, strict=True)
        ]
        params = {**columns_of(rows), "topic": self._topic}
        found = await self._postgres.run(_INSERT_ON_POSTGRESQL, params)
        numbers = {row["n"]: int(row["seq"]) for row in found}
        # Each post's rows follow each other; its first event is its first row's.
        firsts, n = [], 1
        for post in posts:
            firsts.append(numbers[n])
            n += len(post.messages)
        return firsts
