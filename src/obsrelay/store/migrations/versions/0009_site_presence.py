"""Site presence: each site's signs of life, and an index over the jobs sites hold.

`site_presence` holds one row per site that was ever seen. `ix_jobs_held_primary`
serves the sites' overview (running, overdue and abandoned jobs) without reading every
job ever stored.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HELD_PRIMARY = "primary_status NOT IN ('CANCELLED', 'COMPLETE', 'EXPIRED', 'FAILED', 'UNREAD')"
_CALLS = ("poll_primary", "poll_alternate", "status", "message", "event")


def upgrade() -> None:
    op.create_table(
        "site_presence",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("since_ms", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger, nullable=True),
        *(sa.Column(f"{call}_ms", sa.BigInteger, nullable=True) for call in _CALLS),
    )
    op.create_index(
        "ix_jobs_held_primary",
        "jobs",
        ["site", "ulid"],
        sqlite_where=sa.text(_HELD_PRIMARY),
        postgresql_where=sa.text(_HELD_PRIMARY),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_held_primary", "jobs")
    op.drop_table("site_presence")
