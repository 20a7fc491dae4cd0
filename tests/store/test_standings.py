"""A site's standing (registered, keyed), read on every request of a site, on both
backends: alone, and many at once (PostgreSQL reads those in one statement); and, with
the database's change notices, kept until the sites or keys change."""

import asyncio

import pytest

from obsrelay.store import sites as queries
from obsrelay.store.database import Database
from obsrelay.store.site_changes import SiteChanges, follow_site_changes
from tests.conftest import migrated
from tests.store.test_site_changes import version_when


async def test_the_standing_of_many_sites_asked_at_once(db: Database, site: str):
    bare, keyed, revoked, unknown = (f"{site}-{kind}" for kind in ("b", "k", "r", "u"))

    def prepare(conn) -> None:
        for name in (bare, keyed, revoked):
            queries.register(conn, name, 1, "test")
        for name, revoked_ms in ((keyed, None), (revoked, 2)):
            key = queries.KeyRow(f"key-{name}", name, "hash", 1, revoked_ms)
            queries.insert_key(conn, key)

    await db.write(prepare)
    standings = queries.Standings(db)
    asked = [bare, keyed, revoked, unknown, keyed, bare]
    answers = await asyncio.gather(*(standings.of(name) for name in asked))
    expected = {
        bare: (True, False),
        keyed: (True, True),
        revoked: (True, False),
        unknown: (False, False),
    }
    assert answers == [expected[name] for name in asked]
    # Read anew each time: a key added now counts at once.
    await db.write(lambda conn: queries.insert_key(conn, queries.KeyRow("k2", bare, "h", 3, None)))
    assert await standings.of(bare) == (True, True)


def count_standing_reads(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The standing statements `db` runs from now on, each noted by name (the database is
    the real one; its two ways of reading are wrapped, not replaced)."""
    standing_statements = {
        id(queries._STANDING): "one",
        id(queries._STANDINGS_ON_POSTGRESQL): "many",
    }
    seen: list[str] = []
    for method in ("fetch", "run"):
        real = getattr(db, method, None)
        if real is None:
            continue

        async def counted(statement, params, real=real):
            if id(statement) in standing_statements:
                seen.append(standing_statements[id(statement)])
            return await real(statement, params)

        monkeypatch.setattr(db, method, counted)
    return seen


async def test_a_registered_standing_is_kept_until_the_sites_or_keys_change(
    database_url: str, db: Database, site: str, monkeypatch: pytest.MonkeyPatch
):
    await db.write(lambda conn: queries.register(conn, site, 1, "test"))
    changes = follow_site_changes(db)
    try:
        await version_when(changes, lambda version: version is not None)
        reads = count_standing_reads(db, monkeypatch)
        standings = queries.Standings(db, changes)
        assert [await standings.of(site) for _ in range(3)] == [(True, False)] * 3
        assert len(reads) == 1
        # A name that is not registered is read each time, and never kept.
        unknown = f"{site}-unknown"
        assert [await standings.of(unknown) for _ in range(2)] == [(False, False)] * 2
        assert len(reads) == 3
        # A key added by another process: the next standing has it (on PostgreSQL, as
        # soon as the database's notice has come).
        before = await changes.version()
        async with migrated(database_url) as elsewhere:
            key = queries.KeyRow(f"k-{site}", site, "hash", 2, None)
            await elsewhere.write(lambda conn: queries.insert_key(conn, key))
        await version_when(changes, lambda version: version != before)
        assert [await standings.of(site) for _ in range(2)] == [(True, True)] * 2
        assert len(reads) == 4
    finally:
        await changes.close()


class ChangedDuringTheFirstRead(SiteChanges):
    """Version 1 at the first look, 2 ever after: as if a key came while the first
    standing was read (a timing that a real notice cannot be made to keep in a test)."""

    def __init__(self) -> None:
        self.looks = 0

    async def version(self) -> int | None:
        self.looks += 1
        return 1 if self.looks == 1 else 2


async def test_a_standing_read_across_a_change_is_read_again(
    db: Database, site: str, monkeypatch: pytest.MonkeyPatch
):
    await db.write(lambda conn: queries.register(conn, site, 1, "test"))
    reads = count_standing_reads(db, monkeypatch)
    standings = queries.Standings(db, ChangedDuringTheFirstRead())
    for _ in range(3):
        assert await standings.of(site) == (True, False)
    # The first read may predate the change: the second call reads again, the third
    # finds the second's.
    assert len(reads) == 2
