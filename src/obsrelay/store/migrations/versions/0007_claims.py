"""Idempotent claims get a table of their own, instead of "claim:<id>" history sources.

The claims already stored move there; their history rows become plain site claims.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("claim_id", sa.String(64), primary_key=True),
        sa.Column("queue", sa.String(16), primary_key=True),
        sa.Column(
            "job_ulid",
            sa.String(26),
            sa.ForeignKey("jobs.ulid", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_claims_at", "claims", ["at_ms"])
    op.execute(
        "INSERT INTO claims (claim_id, queue, job_ulid, at_ms) "
        "SELECT substr(source, 7), queue, job_ulid, max(at_ms) FROM job_history "
        "WHERE source LIKE 'claim:%' GROUP BY substr(source, 7), queue, job_ulid"
    )
    op.execute("UPDATE job_history SET source = 'site' WHERE source LIKE 'claim:%'")
    op.drop_index("ix_job_history_source", "job_history")


def downgrade() -> None:
    op.create_index("ix_job_history_source", "job_history", ["source"])
    op.drop_index("ix_claims_at", "claims")
    op.drop_table("claims")
