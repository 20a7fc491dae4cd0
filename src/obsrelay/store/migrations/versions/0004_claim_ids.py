"""Find the jobs of one claim again by its history entries (idempotent claims).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_job_history_source", "job_history", ["source"])


def downgrade() -> None:
    op.drop_index("ix_job_history_source", "job_history")
