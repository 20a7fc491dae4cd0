"""Queries on `alerts_sent`: which process sends an alert that several could send.

Functions of a Connection, run by `Database.read` or `Database.write`; none commits.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from obsrelay.store.schema import alerts_sent


def _insert_ignoring_existing(dialect: str) -> sa.UpdateBase:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(alerts_sent).on_conflict_do_nothing(index_elements=[alerts_sent.c.key])


_TAKE = {dialect: _insert_ignoring_existing(dialect) for dialect in ("postgresql", "sqlite")}


def take(conn: sa.Connection, key: str, now_ms: int) -> bool:
    """True for the one transaction that records `key` first: it sends that alert."""
    return bool(conn.execute(_TAKE[conn.dialect.name], {"key": key, "at_ms": now_ms}).rowcount)


def taken(conn: sa.Connection, key: str) -> bool:
    query = sa.select(sa.literal(1)).where(alerts_sent.c.key == key)
    return conn.execute(query).first() is not None


def forget_before(conn: sa.Connection, at_ms: int) -> int:
    return int(conn.execute(alerts_sent.delete().where(alerts_sent.c.at_ms < at_ms)).rowcount)
