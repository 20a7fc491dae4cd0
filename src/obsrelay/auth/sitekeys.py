"""Site keys: the credentials an observatory's software sends as that site.

A key is `ork_<id>_<secret>`. Only the SHA-256 of the secret is stored (the secret is
32 random bytes, so a fast hash is enough); a key is looked up by its id and compared
in constant time. Revoking a key marks its row, which every check reads, so it takes
effect at once.
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from obsrelay.store.database import Database
from obsrelay.store.schema import site_keys

PREFIX = "ork"


@dataclass(frozen=True)
class SiteKey:
    key_id: str
    site: str
    created_ms: int
    revoked_ms: int | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(key: str) -> tuple[str, str] | None:
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def looks_like_site_key(value: str) -> bool:
    return _split(value) is not None


class SiteKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, site: str) -> str:
        """Makes a new key for `site`; returns it (the only time it is seen whole)."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32).replace("_", "-")
        row = {
            "key_id": key_id,
            "site": site,
            "secret_hash": _hash(secret),
            "created_ms": int(time.time() * 1000),
            "revoked_ms": None,
        }
        await self._db.write(lambda conn: conn.execute(site_keys.insert(), row))
        return f"{PREFIX}_{key_id}_{secret}"

    async def revoke(self, site: str, key_id: str) -> bool:
        now = int(time.time() * 1000)

        def revoke(conn: sa.Connection) -> int:
            query = (
                site_keys.update()
                .where(
                    site_keys.c.site == site,
                    site_keys.c.key_id == key_id,
                    site_keys.c.revoked_ms.is_(None),
                )
                .values(revoked_ms=now)
            )
            return conn.execute(query).rowcount

        return await self._db.write(revoke) > 0

    async def list(self, site: str | None = None) -> list[SiteKey]:
        def read(conn: sa.Connection) -> list[sa.Row[Any]]:
            query = sa.select(site_keys).order_by(site_keys.c.site, site_keys.c.created_ms)
            if site is not None:
                query = query.where(site_keys.c.site == site)
            return list(conn.execute(query))

        return [
            SiteKey(row.key_id, row.site, row.created_ms, row.revoked_ms)
            for row in await self._db.read(read)
        ]

    async def site_of(self, key: str) -> str | None:
        """The site a valid, unrevoked key belongs to; None for any other key."""
        parts = _split(key)
        if parts is None:
            return None
        key_id, secret = parts

        def read(conn: sa.Connection) -> sa.Row[Any] | None:
            query = sa.select(site_keys).where(site_keys.c.key_id == key_id)
            return conn.execute(query).first()

        row = await self._db.read(read)
        expected = row.secret_hash if row is not None else _hash("no such key")
        matches = hmac.compare_digest(_hash(secret), expected)
        if row is None or not matches or row.revoked_ms is not None:
            return None
        return str(row.site)
