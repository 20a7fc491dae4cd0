"""Site keys: the credentials an observatory's software sends as that site.

A key is `ork_<id>_<secret>`: a 12-hex-digit id and a url-safe secret. Only the
SHA-256 of the secret is stored (the secret is 32 random bytes, so a fast hash is
enough); a key is looked up by its id and compared in constant time. Revoking a key
marks its row. Every check reads the row, or, with `changes`, the row as read since the
database last announced a change to the sites or keys (store/site_changes.py), so a
revocation takes effect at once. The SQL is in store/sites.py.
"""

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa

from obsrelay.store import sites as queries
from obsrelay.store.database import Database
from obsrelay.store.site_changes import KeptUntilChanged, SiteChanges

PREFIX = "ork"
# The whole shape of a key; anything else is not looked up at all.
_KEY = re.compile(r"ork_([0-9a-f]{12})_([A-Za-z0-9-]{20,64})")


@dataclass(frozen=True)
class SiteKey:
    key_id: str
    site: str
    created_ms: int
    revoked_ms: int | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(key: str) -> tuple[str, str] | None:
    match = _KEY.fullmatch(key)
    return (match.group(1), match.group(2)) if match else None


def looks_like_site_key(value: str) -> bool:
    return value.startswith(f"{PREFIX}_")


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key (safe to log), or None."""
    parts = _split(key)
    return parts[0] if parts else None


class SiteKeys:
    def __init__(self, db: Database, changes: SiteChanges | None = None) -> None:
        self._db = db
        # Rows of keys that exist: an id made up by a caller is read each time, not kept.
        self._rows: KeptUntilChanged[str, queries.KeyRow | None] = KeptUntilChanged(
            changes, worth_keeping=lambda row: row is not None
        )

    async def add(self, site: str) -> str:
        """Makes a new key for `site` (registering the site); returns it, the only time it
        is seen whole."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32).replace("_", "-")
        now = int(time.time() * 1000)
        row = queries.KeyRow(key_id, site, _hash(secret), now, None)

        def add(conn: sa.Connection) -> None:
            queries.register(conn, site, now, "key")
            queries.insert_key(conn, row)

        await self._db.write(add)
        return f"{PREFIX}_{key_id}_{secret}"

    async def revoke(self, site: str, key_id: str) -> bool:
        now = int(time.time() * 1000)
        return await self._db.write(lambda conn: queries.revoke_key(conn, site, key_id, now))

    async def list(self, site: str | None = None) -> list[SiteKey]:
        rows = await self._db.read(lambda conn: queries.list_keys(conn, site))
        return [SiteKey(row.key_id, row.site, row.created_ms, row.revoked_ms) for row in rows]

    async def site_of(self, key: str) -> str | None:
        """The site a valid, unrevoked key belongs to; None for any other key."""
        parts = _split(key)
        if parts is None:
            return None
        key_id, secret = parts
        row = await self._rows.get(
            key_id, lambda: self._db.read(lambda conn: queries.get_key(conn, key_id))
        )
        expected = row.secret_hash if row is not None else _hash("no such key")
        matches = hmac.compare_digest(_hash(secret), expected)
        if row is None or not matches or row.revoked_ms is not None:
            return None
        return row.site
