"""Queries on the datastream's event log (stream_heads, stream_events).

A site's events are numbered 1, 2, 3, ... by `reserve_seqs`, which takes the numbers
from the site's row in stream_heads. That row stays locked until the transaction
ends, so a later transaction of the same site gets higher numbers and commits later:
a reader that has seen number n has seen every number below it.
"""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from obsrelay.store.schema import stream_events, stream_heads

_INSERT_EVENTS = stream_events.insert()


def _reserve_statement(dialect: str) -> sa.UpdateBase:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(stream_heads)
        .values(site=sa.bindparam("site"), last_seq=sa.bindparam("first_count"))
        .on_conflict_do_update(
            index_elements=[stream_heads.c.site],
            set_={"last_seq": stream_heads.c.last_seq + sa.bindparam("count")},
        )
        .returning(stream_heads.c.last_seq)
    )


# Built once per dialect: every job change and message runs one, and building it
# costs more than running it.
_RESERVE = {dialect: _reserve_statement(dialect) for dialect in ("postgresql", "sqlite")}


def reserve_seqs(conn: sa.Connection, site: str, count: int) -> int:
    """Takes the next `count` numbers of `site`'s stream; returns the first of them."""
    params = {"site": site, "first_count": count, "count": count}
    last: int = conn.execute(_RESERVE[conn.dialect.name], params).scalar_one()
    return last - count + 1


def insert_events(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Stores events given as dicts of site, seq, topic, data, at_ms."""
    if rows:
        conn.execute(_INSERT_EVENTS, rows[0] if len(rows) == 1 else rows)


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
