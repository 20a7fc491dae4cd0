"""Fresh databases for a benchmark's servers: a new SQLite file in the run's folder, or
a new database on the PostgreSQL server of an admin URL, to be dropped after the run."""

import asyncio
import uuid
from pathlib import Path

from sqlalchemy.engine import make_url
from tests.servers import _admin


def new_database(postgres_admin: str | None, workdir: Path) -> tuple[str, str | None]:
    """(its URL, the PostgreSQL database to drop after the run; None for SQLite)."""
    if not postgres_admin:
        return f"sqlite:///{workdir / f'{uuid.uuid4().hex[:8]}.db'}", None
    return asyncio.run(create_postgres_database(postgres_admin))


async def create_postgres_database(postgres_admin: str) -> tuple[str, str]:
    """(its URL, its name) of a new database on the server of `postgres_admin`."""
    name = f"obsrelay_bench_{uuid.uuid4().hex[:8]}"
    await _admin(postgres_admin, f'CREATE DATABASE "{name}"')
    return make_url(postgres_admin).set(database=name).render_as_string(False), name


def drop_database(postgres_admin: str, name: str) -> None:
    asyncio.run(drop_postgres_database(postgres_admin, name))


async def drop_postgres_database(postgres_admin: str, name: str) -> None:
    await _admin(postgres_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def vacuum_postgres_database(url: str) -> None:
    """VACUUM ANALYZE of the database of `url`: its dead rows gone, its statistics new."""
    await _admin(url, "VACUUM ANALYZE")
