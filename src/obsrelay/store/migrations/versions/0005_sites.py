"""The site registry, filled with every site that has a key, a job, a message or a stream.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
    )
    now_ms = int(time.time() * 1000)
    op.execute(
        sa.text(
            "INSERT INTO sites (name, created_ms, created_by) "
            "SELECT site, :now, 'upgrade' FROM ("
            " SELECT site FROM site_keys UNION SELECT site FROM stream_heads"
            " UNION SELECT DISTINCT site FROM jobs UNION SELECT DISTINCT site FROM messages"
            ") AS known"
        ).bindparams(now=now_ms)
    )


def downgrade() -> None:
    op.drop_table("sites")
