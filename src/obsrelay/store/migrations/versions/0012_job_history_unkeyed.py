"""The job history without a foreign key to its job.

Each history row is written by the statement that changes its job, from the job's own
changed row (store/jobs.py, store/job_writes.py), and no job is ever deleted: the key
checked nothing that the writes do not already guarantee. Its check locked the job's
row again for every change, a lock that PostgreSQL writes to its log (docs/adr/0014).

SQLite cannot drop a key from a table, so the table is built again, rows and index.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KEY = "job_history_job_ulid_fkey"  # PostgreSQL's name for the key of migration 0001
COLUMNS = "id, job_ulid, at_ms, queue, status, seconds_until_complete, source"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(KEY, "job_history", type_="foreignkey")
    else:
        _rebuild_on_sqlite(keyed=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(
            KEY, "job_history", "jobs", ["job_ulid"], ["ulid"], ondelete="CASCADE"
        )
    else:
        _rebuild_on_sqlite(keyed=True)


def _rebuild_on_sqlite(*, keyed: bool) -> None:
    key = [sa.ForeignKey("jobs.ulid", ondelete="CASCADE")] if keyed else []
    op.create_table(
        "job_history_rebuilt",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("job_ulid", sa.String(26), *key, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("queue", sa.String(16), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("seconds_until_complete", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
    )
    op.execute(f"INSERT INTO job_history_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM job_history")
    op.drop_index("ix_job_history_job", "job_history")
    op.drop_table("job_history")
    op.rename_table("job_history_rebuilt", "job_history")
    op.create_index("ix_job_history_job", "job_history", ["job_ulid", "id"])
