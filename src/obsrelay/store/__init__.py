"""The store: obsrelay's one source of truth, in SQL tables on SQLite or PostgreSQL."""

from obsrelay.store.database import Database, open_database

__all__ = ["Database", "open_database"]
