"""The alerts some process has taken on to send, so that each is sent once.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts_sent",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_alerts_sent_at", "alerts_sent", ["at_ms"])


def downgrade() -> None:
    op.drop_index("ix_alerts_sent_at", "alerts_sent")
    op.drop_table("alerts_sent")
