"""Every change to the site registry or the site keys is announced by the database itself.

A one-row table, `site_changes`, holds a version that triggers raise after each insert,
update or delete on `sites` or `site_keys`, by anyone: a server, the command line, or
an operator's own SQL. On PostgreSQL the same triggers also send a notice on the
channel `obsrelay_site_changes`. A server keeps what it read of a site's standing and
of its keys until either says that something changed (store/site_changes.py,
docs/adr/0012).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = ("sites", "site_keys")
SQLITE_EVENTS = ("insert", "update", "delete")


def upgrade() -> None:
    op.create_table(
        "site_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO site_changes (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION obsrelay_site_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE site_changes SET version = version + 1 WHERE id = 1;
                PERFORM pg_notify('obsrelay_site_changes', '');
                RETURN NULL;
            END $$
            """
        )
        for table in WATCHED:
            op.execute(
                f"CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION obsrelay_site_changed()"
            )
    else:
        for table in WATCHED:
            for event in SQLITE_EVENTS:
                op.execute(
                    f"CREATE TRIGGER {table}_{event}_changed AFTER {event.upper()} ON {table} "
                    "BEGIN UPDATE site_changes SET version = version + 1 WHERE id = 1; END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER {table}_changed ON {table}")
        op.execute("DROP FUNCTION obsrelay_site_changed()")
    else:
        for table in WATCHED:
            for event in SQLITE_EVENTS:
                op.execute(f"DROP TRIGGER {table}_{event}_changed")
    op.drop_table("site_changes")
