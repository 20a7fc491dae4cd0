"""Jobs and their status history.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("ulid", sa.String(26), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("device_type", sa.Text, nullable=False),
        sa.Column("device_instance", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("required_params", sa.JSON, nullable=False),
        sa.Column("optional_params", sa.JSON, nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("user_roles", sa.JSON, nullable=False),
        sa.Column("primary_status", sa.String(64), nullable=False),
        sa.Column("primary_seconds", sa.Integer, nullable=False),
        sa.Column("primary_updated_ms", sa.BigInteger, nullable=False),
        sa.Column("alternate_status", sa.String(64), nullable=False),
        sa.Column("alternate_seconds", sa.Integer, nullable=False),
        sa.Column("alternate_updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_jobs_site_ulid", "jobs", ["site", "ulid"])
    for queue in ("primary", "alternate"):
        where = sa.text(f"{queue}_status = 'UNREAD'")
        op.create_index(
            f"ix_jobs_unread_{queue}",
            "jobs",
            ["site", "ulid"],
            sqlite_where=where,
            postgresql_where=where,
        )
    op.create_table(
        "job_history",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "job_ulid",
            sa.String(26),
            sa.ForeignKey("jobs.ulid", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("queue", sa.String(16), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("seconds_until_complete", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
    )
    op.create_index("ix_job_history_job", "job_history", ["job_ulid", "id"])


def downgrade() -> None:
    op.drop_table("job_history")
    op.drop_table("jobs")
