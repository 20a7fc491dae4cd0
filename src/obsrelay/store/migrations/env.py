"""Alembic's entry point: runs migrations on the connection that `Database.upgrade` passes in."""

from alembic import context

from obsrelay.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
