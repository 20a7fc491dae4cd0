"""The stream stores obsrelay's own event shapes: the old rows, in the hosted
service's wire form, are expired rather than rewritten.

Before this revision a stream event held the legacy frame data (topic "jobs" or
"userstatus"); from it on, a "job" or "message" event holds `Job.to_data()` or
`Message.to_data()`, and each stream renders its frames from that. The old rows are
deleted, not rewritten: they lack what the new shape needs (each queue's update time,
the message's id), events are kept only for the replay of a reconnecting client (a
few minutes in practice, seven days at most), and the site heads stay, so numbering
goes on from where it was and no client's `since` goes backwards. A client that was
away across the upgrade resumes after the gap: what happened in it is in the job and
message lists, not replayed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM stream_events WHERE topic IN ('jobs', 'userstatus')")


def downgrade() -> None:
    # The older version cannot render the new shapes: expire them the same way.
    op.execute("DELETE FROM stream_events WHERE topic IN ('job', 'message')")
