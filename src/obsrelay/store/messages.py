"""Queries on the messages table. Functions of a Connection, run by `Database.read/write`."""

from typing import Any

import sqlalchemy as sa

from obsrelay.domain.messages import Message
from obsrelay.store.schema import messages


def _to_message(row: sa.Row[Any]) -> Message:
    return Message(row.ulid, row.site, row.timestamp, row.level, row.message)


def message_row(message: Message) -> dict[str, Any]:
    """The message as a row of the messages table."""
    return {
        "ulid": message.ulid,
        "site": message.site,
        "timestamp": message.timestamp,
        "level": message.level,
        "message": message.message,
    }


def messages_since(conn: sa.Connection, site: str, after_timestamp: float) -> list[Message]:
    """`site`'s messages dated after `after_timestamp`, oldest first."""
    query = (
        sa.select(messages)
        .where(messages.c.site == site, messages.c.timestamp > after_timestamp)
        .order_by(messages.c.timestamp, messages.c.ulid)
    )
    return [_to_message(row) for row in conn.execute(query)]


def page_messages(
    conn: sa.Connection,
    site: str,
    *,
    not_before: float,
    after: str | None,
    limit: int,
) -> list[Message]:
    """`site`'s messages in the order they were stored, after the cursor `after`."""
    query = sa.select(messages).where(messages.c.site == site, messages.c.timestamp >= not_before)
    if after is not None:
        query = query.where(messages.c.ulid > after)
    query = query.order_by(messages.c.ulid).limit(limit)
    return [_to_message(row) for row in conn.execute(query)]


def messages_before(
    conn: sa.Connection, site: str, *, not_before: float, before: str, limit: int
) -> list[Message]:
    """The `limit` messages of `site` stored just before the cursor `before`, oldest first."""
    query = (
        sa.select(messages)
        .where(
            messages.c.site == site, messages.c.timestamp >= not_before, messages.c.ulid < before
        )
        .order_by(messages.c.ulid.desc())
        .limit(limit)
    )
    return [_to_message(row) for row in reversed(conn.execute(query).all())]


def delete_messages_before(conn: sa.Connection, timestamp: float, limit: int) -> int:
    """Deletes up to `limit` messages dated before `timestamp`; returns how many."""
    doomed = (
        sa.select(messages.c.ulid)
        .where(messages.c.timestamp < timestamp)
        .order_by(messages.c.timestamp)
        .limit(limit)
        .scalar_subquery()
    )
    return conn.execute(messages.delete().where(messages.c.ulid.in_(doomed))).rowcount
