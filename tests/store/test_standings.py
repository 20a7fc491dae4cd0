"""A site's standing (registered, keyed), read on every request of a site, on both
backends: alone, and many at once (PostgreSQL reads those in one statement)."""

import asyncio

from obsrelay.store import sites as queries
from obsrelay.store.database import Database


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
