"""Repair stored values that cannot be sent: lone surrogates, NaN, integers past 64 bits.

Older versions let them into job parameters (and the datastream's copies of jobs),
and a job holding one broke every poll and listing of its site. The value rules now
refuse them at the door (domain/values.py); this repairs what is already stored,
with `repaired` from there: a lone surrogate or NUL becomes U+FFFD, a non-finite
number null, an integer too large its digits as text. The rows are scanned once, in
batches.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

import json
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from obsrelay.domain.values import parse_int_leniently, repaired

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("obsrelay.store")
_BATCH = 1000


def _repaired_text(text: str | None) -> str | None:
    """The JSON `text` repaired, or None when it needs no repair."""
    if text is None:
        return None
    too_long = False

    def parse_int(digits: str) -> int | str:
        nonlocal too_long
        parsed = parse_int_leniently(digits)
        too_long = too_long or isinstance(parsed, str)
        return parsed

    try:
        value = json.loads(text, parse_int=parse_int)
    except ValueError:
        return None
    fixed, changed = repaired(value)
    return json.dumps(fixed) if changed or too_long else None


def _repair(table: str, key: Sequence[str], columns: Sequence[str]) -> int:
    conn = op.get_bind()
    table_ = sa.table(table, *(sa.column(name) for name in (*key, *columns)))
    texts = [sa.cast(table_.c[name], sa.Text).label(name) for name in columns]
    keys = [table_.c[name] for name in key]
    done = 0
    after: tuple[Any, ...] | None = None
    while True:
        query = sa.select(*keys, *texts).order_by(*keys).limit(_BATCH)
        if after is not None:
            query = query.where(sa.tuple_(*keys) > sa.tuple_(*after))
        rows = conn.execute(query).all()
        for row in rows:
            fixes = {name: _repaired_text(getattr(row, name)) for name in columns}
            fixes = {name: text for name, text in fixes.items() if text is not None}
            if fixes:
                where = [table_.c[name] == getattr(row, name) for name in key]
                json_column = conn.dialect.name == "postgresql" and table == "jobs"
                values = {
                    name: sa.cast(sa.bindparam(f"new_{name}", type_=sa.Text), sa.JSON)
                    if json_column
                    else sa.bindparam(f"new_{name}", type_=sa.Text)
                    for name in fixes
                }
                params = {f"new_{name}": text for name, text in fixes.items()}
                conn.execute(sa.update(table_).where(*where).values(**values), params)
                done += 1
        if len(rows) < _BATCH:
            return done
        after = tuple(getattr(rows[-1], name) for name in key)


def upgrade() -> None:
    jobs = _repair("jobs", ["ulid"], ["required_params", "optional_params"])
    events = _repair("stream_events", ["site", "seq"], ["data"])
    if jobs or events:
        log.warning(
            "repaired %d jobs and %d datastream events holding values that cannot be sent",
            jobs,
            events,
        )


def downgrade() -> None:
    pass
