"""User status messages and the datastream's per-site event log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("ulid", sa.String(26), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_messages_site_timestamp", "messages", ["site", "timestamp"])
    op.create_index("ix_messages_site_ulid", "messages", ["site", "ulid"])
    op.create_index("ix_messages_timestamp", "messages", ["timestamp"])
    op.create_table(
        "stream_heads",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "stream_events",
        sa.Column("site", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("topic", sa.String(32), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_stream_events_at", "stream_events", ["at_ms"])


def downgrade() -> None:
    op.drop_table("stream_events")
    op.drop_table("stream_heads")
    op.drop_table("messages")
