"""The tables, as SQLAlchemy Core metadata. Migrations in `migrations/` create them.

One row per job in `jobs`, holding the job and its state on both queues; one row per
status change in `job_history`. The partial indexes on UNREAD jobs make a poll's cost
depend on the jobs waiting for a site, not on every job ever stored.
"""

import sqlalchemy as sa

from obsrelay.domain.lifecycle import FINAL_STATUSES, UNREAD
from obsrelay.domain.presence import Call

metadata = sa.MetaData()

# The jobs that a site holds on its primary queue (received, or running): the partial
# index over them serves the sites' overview. The same text is in the queries, since
# SQLite uses a partial index only for a WHERE term written exactly as its own.
HELD_PRIMARY = "primary_status NOT IN ({})".format(
    ", ".join(f"'{status}'" for status in sorted(FINAL_STATUSES | {UNREAD}))
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a BIGINT.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

jobs = sa.Table(
    "jobs",
    metadata,
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
    sa.Index("ix_jobs_site_ulid", "site", "ulid"),
    sa.Index(
        "ix_jobs_unread_primary",
        "site",
        "ulid",
        sqlite_where=sa.text("primary_status = 'UNREAD'"),
        postgresql_where=sa.text("primary_status = 'UNREAD'"),
    ),
    sa.Index(
        "ix_jobs_unread_alternate",
        "site",
        "ulid",
        sqlite_where=sa.text("alternate_status = 'UNREAD'"),
        postgresql_where=sa.text("alternate_status = 'UNREAD'"),
    ),
    sa.Index(
        "ix_jobs_held_primary",
        "site",
        "ulid",
        sqlite_where=sa.text(HELD_PRIMARY),
        postgresql_where=sa.text(HELD_PRIMARY),
    ),
)

job_history = sa.Table(
    "job_history",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # No foreign key: each row is written with its job's change, from the changed row,
    # and jobs are never deleted; the key's check cost a lock per change (migration 0012).
    sa.Column("job_ulid", sa.String(26), nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Column("queue", sa.String(16), nullable=False),
    sa.Column("status", sa.String(64), nullable=False),
    sa.Column("seconds_until_complete", sa.Integer, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Index("ix_job_history_job", "job_ulid", "id"),
)

# The jobs each identified claim took: a retry of a claim whose answer was lost finds
# them here and gets the same jobs again (and takes no more).
claims = sa.Table(
    "claims",
    metadata,
    sa.Column("claim_id", sa.String(64), primary_key=True),
    sa.Column("queue", sa.String(16), primary_key=True),
    sa.Column(
        "job_ulid",
        sa.String(26),
        sa.ForeignKey("jobs.ulid", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_claims_at", "at_ms"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("ulid", sa.String(26), primary_key=True),
    sa.Column("site", sa.String(64), nullable=False),
    sa.Column("timestamp", sa.Float, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("ix_messages_site_timestamp", "site", "timestamp"),
    sa.Index("ix_messages_site_ulid", "site", "ulid"),
    sa.Index("ix_messages_timestamp", "timestamp"),
)

# The datastream's log: every stored event of a site (a message, a job change) with a
# per-site sequence number. `stream_heads` holds each site's last number; taking the
# next one locks that row until commit, so numbers become visible in commit order and
# a reader resuming after number n can never miss one that commits late.
stream_heads = sa.Table(
    "stream_heads",
    metadata,
    sa.Column("site", sa.String(64), primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
)

stream_events = sa.Table(
    "stream_events",
    metadata,
    sa.Column("site", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("topic", sa.String(32), nullable=False),
    # The frame's `data` as JSON text, encoded once when stored and sent as it is.
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_stream_events_at", "at_ms"),
)

# The sites there are. A job may be submitted only to a registered site, so a typo in a
# site's name is refused rather than left waiting for nobody.
sites = sa.Table(
    "sites",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    # Who registered it: "operator", "key", or "call from <client>" (its first call).
    sa.Column("created_by", sa.Text, nullable=False),
)

site_keys = sa.Table(
    "site_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("site", sa.String(64), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("revoked_ms", sa.BigInteger, nullable=True),
    sa.Index("ix_site_keys_site", "site"),
)

# One row, whose version the database's own triggers raise at every change to `sites` or
# `site_keys`, whoever makes it (migration 0011; store/site_changes.py reads it).
site_changes = sa.Table(
    "site_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)

# Each site's signs of life (domain/presence.py): whether it is online, since when,
# when it was last seen, and when each kind of call last came. Written every few
# seconds from each process's sightings in memory, never on a request's path.
site_presence = sa.Table(
    "site_presence",
    metadata,
    sa.Column("site", sa.String(64), primary_key=True),
    sa.Column("online", sa.Boolean, nullable=False),
    sa.Column("since_ms", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=True),
    *(sa.Column(f"{call}_ms", sa.BigInteger, nullable=True) for call in Call),
)

# The alerts that some process has taken on to send, by a key naming what happened
# ("offline:<site>:<since_ms>", "overdue:<ulid>"): the first process to insert a key
# sends that alert, so several processes send each one once (services/alerts.py).
alerts_sent = sa.Table(
    "alerts_sent",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_alerts_sent_at", "at_ms"),
)
