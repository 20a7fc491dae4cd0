"""Queries on the datastream's event log (stream_heads, stream_events).

A site's events are numbered 1, 2, 3, ... by `append_events`, which takes the numbers
from the site's row in stream_heads. That row stays locked until the transaction
ends, so a later transaction of the same site gets higher numbers and commits later:
a reader that has seen number n has seen every number below it.

Every change of a site waits for that lock, so it is taken as late as can be: on
PostgreSQL the numbers are taken and the events stored in one statement, which is
the last of its transaction (one round trip and the commit while it is held), or is
the whole of it (`append_each_on_postgresql`, the batches of store/job_writes.py).
"""

from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from obsrelay.store.database import Statement
from obsrelay.store.schema import stream_events, stream_heads

# SQLite: the numbers taken, then the events stored, each by the driver itself: every job
# change and message runs them, and SQLAlchemy's execution costs more than SQLite's.
_INSERT_EVENT_ON_SQLITE = Statement(stream_events.insert())
_RESERVE_ON_SQLITE = Statement(
    sqlite.insert(stream_heads)
    .values(site=sa.bindparam("site"), last_seq=sa.bindparam("count"))
    .on_conflict_do_update(
        index_elements=[stream_heads.c.site],
        set_={"last_seq": stream_heads.c.last_seq + sa.bindparam("count")},
    )
    .returning(stream_heads.c.last_seq)
)


# PostgreSQL: the numbers taken and the events stored in one statement (item k of the
# array, counted from 1, is numbered last - count + k). Parameters: site, count, topic,
# items (each event's data as JSON text), at_ms.
_APPEND_ON_POSTGRESQL = sa.text(
    """
    WITH head AS (
        INSERT INTO stream_heads (site, last_seq) VALUES (:site, :count)
        ON CONFLICT (site) DO UPDATE SET last_seq = stream_heads.last_seq + :count
        RETURNING last_seq
    )
    INSERT INTO stream_events (site, seq, topic, data, at_ms)
    SELECT :site, head.last_seq - :count + item.number, :topic, item.data, :at_ms
    FROM head, unnest(:items) WITH ORDINALITY AS item(data, number)
    RETURNING seq
    """
).bindparams(sa.bindparam("items", type_=postgresql.ARRAY(sa.Text)))


_APPEND_DIRECT = Statement(_APPEND_ON_POSTGRESQL)


def append_each_on_postgresql(before: str, source: str) -> sa.TextClause:
    """PostgreSQL: one statement that changes other tables (`before`: its CTEs, each
    `name AS (...)`, comma-separated) and stores an event for each row of `source` (the
    name of one of those CTEs, with the columns n, the row's place in the batch, site,
    data as JSON text, and at_ms), all in one transaction. Each site's events are
    numbered in the order of n.

    Its rows: (n, seq), the number each row of `source` got. The sites' stream heads
    are taken in the order of their names, so that two such statements never wait for
    each other crosswise.
    """
    return sa.text(
        f"""
        WITH {before},
        counts AS (SELECT site, count(*) AS count FROM {source} GROUP BY site),
        head AS (
            INSERT INTO stream_heads (site, last_seq)
            SELECT site, count FROM counts ORDER BY site
            ON CONFLICT (site) DO UPDATE SET last_seq = stream_heads.last_seq + excluded.last_seq
            RETURNING site, last_seq
        ),
        numbered AS (
            SELECT event.n, event.site, event.data, event.at_ms,
                head.last_seq - counts.count
                    + row_number() OVER (PARTITION BY event.site ORDER BY event.n) AS seq
            FROM {source} AS event JOIN head USING (site) JOIN counts USING (site)
        ),
        stored AS (
            INSERT INTO stream_events (site, seq, topic, data, at_ms)
            SELECT site, seq, :topic, data, at_ms FROM numbered
        )
        SELECT n, seq FROM numbered
        """
    )


def append_events(conn: sa.Connection, site: str, topic: str, items: list[str], at_ms: int) -> int:
    """Stores `items` (each event's data as JSON text) as the next events of `site`'s
    stream, in order; returns the first one's number. Call it last in the transaction:
    the site's stream is locked from here to the commit."""
    if conn.dialect.name == "postgresql":
        params = _append_params(site, topic, items, at_ms)
        numbers: list[int] = list(conn.execute(_APPEND_ON_POSTGRESQL, params).scalars())
        return min(numbers)
    [(last,)] = _RESERVE_ON_SQLITE.run_in(conn, {"site": site, "count": len(items)})
    first: int = last - len(items) + 1
    for offset, data in enumerate(items):
        event = {"site": site, "seq": first + offset, "topic": topic, "data": data, "at_ms": at_ms}
        _INSERT_EVENT_ON_SQLITE.run_in(conn, event)
    return first


async def append_events_on(
    conn: asyncpg.Connection, site: str, topic: str, items: list[str], at_ms: int
) -> int:
    """`append_events` on a PostgreSQL connection of `PostgresDatabase.in_transaction`."""
    numbers = await _APPEND_DIRECT.fetch_on(conn, _append_params(site, topic, items, at_ms))
    return min(int(row["seq"]) for row in numbers)


def _append_params(site: str, topic: str, items: list[str], at_ms: int) -> dict[str, Any]:
    return {"site": site, "count": len(items), "topic": topic, "items": items, "at_ms": at_ms}


def events_after(conn: sa.Connection, site: str, seq: int, limit: int) -> list[sa.Row[Any]]:
    """`site`'s events numbered above `seq`, in order."""
    query = (
        sa.select(stream_events)
        .where(stream_events.c.site == site, stream_events.c.seq > seq)
        .order_by(stream_events.c.seq)
        .limit(limit)
    )
    return list(conn.execute(query))


def head(conn: sa.Connection, site: str) -> int:
    """The number of `site`'s newest event (0 when it has none)."""
    query = sa.select(stream_heads.c.last_seq).where(stream_heads.c.site == site)
    return conn.execute(query).scalar() or 0


def sites(conn: sa.Connection) -> list[tuple[str, int]]:
    """Every site that ever had an event, with its newest event's number, by name."""
    query = sa.select(stream_heads.c.site, stream_heads.c.last_seq).order_by(stream_heads.c.site)
    return [(row.site, row.last_seq) for row in conn.execute(query)]


def delete_events_before(conn: sa.Connection, at_ms: int, limit: int) -> int:
    """Deletes up to `limit` events older than `at_ms`; returns how many."""
    doomed = (
        sa.select(stream_events.c.site, stream_events.c.seq)
        .where(stream_events.c.at_ms < at_ms)
        .order_by(stream_events.c.at_ms)
        .limit(limit)
        .subquery()
    )
    query = stream_events.delete().where(
        sa.tuple_(stream_events.c.site, stream_events.c.seq).in_(
            sa.select(doomed.c.site, doomed.c.seq)
        )
    )
    return conn.execute(query).rowcount
