"""SiteKeys with the database's change notices, on both backends: a key's row is kept
until the sites or keys change, a made-up id is read each time, and a revocation by
another process counts as soon as the database has announced it."""

import pytest

from obsrelay.auth.sitekeys import SiteKeys
from obsrelay.store.database import Database
from obsrelay.store.site_changes import follow_site_changes
from tests.conftest import migrated
from tests.store.test_site_changes import version_when


def count_reads(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per read transaction `db` runs from now on (the real database, its
    `read` wrapped, not replaced)."""
    reads: list[int] = []
    real = db.read

    async def counted(fn):
        reads.append(1)
        return await real(fn)

    monkeypatch.setattr(db, "read", counted)
    return reads


async def test_a_keys_row_is_kept_until_a_change(
    database_url: str, db: Database, site: str, monkeypatch: pytest.MonkeyPatch
):
    changes = follow_site_changes(db)
    try:
        key = await SiteKeys(db).add(site)
        await version_when(changes, lambda version: version is not None)
        keys = SiteKeys(db, changes)
        reads = count_reads(db, monkeypatch)
        assert [await keys.site_of(key) for _ in range(3)] == [site] * 3
        assert len(reads) == 1
        # A wrong secret for a kept id is still refused, without a read.
        key_id = key.split("_")[1]
        assert await keys.site_of(f"ork_{key_id}_{'x' * 43}") is None
        assert len(reads) == 1
        # An id nobody made is read each time, and never kept.
        made_up = f"ork_{'0' * 12}_{'y' * 43}"
        assert [await keys.site_of(made_up) for _ in range(2)] == [None, None]
        assert len(reads) == 3
        # Revoked by another process: refused as soon as the database has said so.
        before = await changes.version()
        async with migrated(database_url) as elsewhere:
            assert await SiteKeys(elsewhere).revoke(site, key_id)
        await version_when(changes, lambda version: version != before)
        assert await keys.site_of(key) is None
        assert len(reads) == 4
    finally:
        await changes.close()
