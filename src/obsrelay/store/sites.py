"""Queries on the site registry (`sites`) and the site keys (`site_keys`).

Functions of a Connection, run by `Database.read` or `Database.write`; none commits.
`Standings` makes the read that every request of a site makes, on either backend.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from obsrelay.store.batching import Batches
from obsrelay.store.database import Database, PostgresDatabase, Statement
from obsrelay.store.schema import site_keys, sites
from obsrelay.store.site_changes import KeptUntilChanged, SiteChanges


@dataclass(frozen=True)
class SiteRow:
    name: str
    created_ms: int
    created_by: str


@dataclass(frozen=True)
class KeyRow:
    key_id: str
    site: str
    secret_hash: str
    created_ms: int
    revoked_ms: int | None


def _insert_ignoring_existing(dialect: str) -> sa.UpdateBase:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(sites).on_conflict_do_nothing(index_elements=[sites.c.name])


_REGISTER = {dialect: _insert_ignoring_existing(dialect) for dialect in ("postgresql", "sqlite")}


def register(conn: sa.Connection, name: str, created_ms: int, created_by: str) -> bool:
    """Adds a site to the registry; False when it was there already (nothing changes)."""
    params = {"name": name, "created_ms": created_ms, "created_by": created_by}
    return bool(conn.execute(_REGISTER[conn.dialect.name], params).rowcount)


def _site_row(row: sa.Row[Any]) -> SiteRow:
    return SiteRow(row.name, row.created_ms, row.created_by)


def get_site(conn: sa.Connection, name: str) -> SiteRow | None:
    row = conn.execute(sa.select(sites).where(sites.c.name == name)).first()
    return _site_row(row) if row else None


def list_sites(conn: sa.Connection, names: Iterable[str] | None = None) -> list[SiteRow]:
    """The registered sites in name order; with `names`, only those of them."""
    query = sa.select(sites).order_by(sites.c.name)
    if names is not None:
        query = query.where(sites.c.name.in_(list(names)))
    return [_site_row(row) for row in conn.execute(query)]


def count_sites(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(sites)).scalar_one())


_SITE_STANDING = sa.select(
    sa.exists().where(sites.c.name == sa.bindparam("site")).label("registered"),
    sa.exists()
    .where(site_keys.c.site == sa.bindparam("site"), site_keys.c.revoked_ms.is_(None))
    .label("keyed"),
)


_STANDING = Statement(_SITE_STANDING)
# The standing of each of several sites (`names`), in their order.
_STANDINGS_ON_POSTGRESQL = Statement(
    sa.text(
        """
        SELECT
            EXISTS (SELECT FROM sites WHERE sites.name = asked.name) AS registered,
            EXISTS (
                SELECT FROM site_keys
                WHERE site_keys.site = asked.name AND site_keys.revoked_ms IS NULL
            ) AS keyed
        FROM unnest(CAST(:names AS text[])) WITH ORDINALITY AS asked(name, n)
        ORDER BY asked.n
        """
    )
)


class Standings:
    """Whether a site is registered and whether it has an active key, as the store says
    now: read on every request of a site (`Database.fetch`). On PostgreSQL the reads that
    arrive together share one statement (store/batching.py).

    With `changes`, a registered site's standing is kept until the sites or keys change
    (store/site_changes.py), and read again after. A name that is not registered is
    read each time: such calls are refused or register it, and made-up names must not
    fill the memory.
    """

    def __init__(self, db: Database, changes: SiteChanges | None = None) -> None:
        self._db = db
        self._kept: KeptUntilChanged[str, tuple[bool, bool]] = KeptUntilChanged(
            changes, worth_keeping=lambda standing: standing[0]
        )
        self._postgres = db if isinstance(db, PostgresDatabase) else None
        self._batches = Batches(self._read_on_postgresql)

    async def of(self, name: str) -> tuple[bool, bool]:
        """(registered, keyed) for the site `name`."""
        return await self._kept.get(name, lambda: self._read(name))

    async def _read(self, name: str) -> tuple[bool, bool]:
        if self._postgres is not None:
            return await self._batches.add(name)
        [row] = await self._db.fetch(_STANDING, {"site": name})
        return bool(row["registered"]), bool(row["keyed"])

    async def _read_on_postgresql(self, names: list[str]) -> list[tuple[bool, bool]]:
        assert self._postgres is not None
        rows = await self._postgres.run(_STANDINGS_ON_POSTGRESQL, {"names": names})
        return [(bool(row["registered"]), bool(row["keyed"])) for row in rows]


def insert_key(conn: sa.Connection, key: KeyRow) -> None:
    conn.execute(
        site_keys.insert(),
        {
            "key_id": key.key_id,
            "site": key.site,
            "secret_hash": key.secret_hash,
            "created_ms": key.created_ms,
            "revoked_ms": key.revoked_ms,
        },
    )


def revoke_key(conn: sa.Connection, site: str, key_id: str, now_ms: int) -> bool:
    query = (
        site_keys.update()
        .where(
            site_keys.c.site == site,
            site_keys.c.key_id == key_id,
            site_keys.c.revoked_ms.is_(None),
        )
        .values(revoked_ms=now_ms)
    )
    return bool(conn.execute(query).rowcount)


def _key_row(row: sa.Row[Any]) -> KeyRow:
    return KeyRow(row.key_id, row.site, row.secret_hash, row.created_ms, row.revoked_ms)


def get_key(conn: sa.Connection, key_id: str) -> KeyRow | None:
    row = conn.execute(sa.select(site_keys).where(site_keys.c.key_id == key_id)).first()
    return _key_row(row) if row else None


def list_keys(conn: sa.Connection, site: str | None = None) -> list[KeyRow]:
    query = sa.select(site_keys).order_by(site_keys.c.site, site_keys.c.created_ms)
    if site is not None:
        query = query.where(site_keys.c.site == site)
    return [_key_row(row) for row in conn.execute(query)]
