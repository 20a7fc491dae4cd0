"""The site registry: which sites exist, and what a name that does not exist probably meant.

A site is registered by the operator (`obsrelay sites add`, `sites add-key`), or by the
first call of its own software; the access policy (auth/access.py) decides who may
register one that way. Jobs may be submitted only to a registered site, so that a typo
in a name is refused instead of left waiting a day for nobody.

Registered names are cached in this process: a site is never unregistered, so a name
once found stays true, and a name not found is looked up again (another process or
the command line may have added it since).
"""

import difflib
import time

from obsrelay.domain.errors import NotFound
from obsrelay.domain.values import quote
from obsrelay.store import sites as queries
from obsrelay.store.database import Database
from obsrelay.store.site_changes import SiteChanges

_NAMES_SHOWN = 10


class SiteRegistry:
    def __init__(self, db: Database, changes: SiteChanges | None = None) -> None:
        self._db = db
        self._known: set[str] = set()
        self._standings = queries.Standings(db, changes)

    async def exists(self, name: str) -> bool:
        if name in self._known:
            return True
        found = await self._db.read(lambda conn: queries.get_site(conn, name)) is not None
        if found:
            self._known.add(name)
        return found

    async def standing(self, name: str) -> tuple[bool, bool]:
        """(registered, has an active key), as the store says now: a key added from the
        command line must lock out keyless callers at once (with `changes`, what was read
        is kept until the store announces a change)."""
        registered, keyed = await self._standings.of(name)
        if registered:
            self._known.add(name)
        return registered, keyed

    async def register(self, name: str, created_by: str) -> bool:
        """Adds `name`; False when it existed already."""
        now = int(time.time() * 1000)
        added = await self._db.write(lambda conn: queries.register(conn, name, now, created_by))
        self._known.add(name)
        return added

    async def count(self) -> int:
        return await self._db.read(queries.count_sites)

    async def names(self) -> list[str]:
        return [row.name for row in await self._db.read(queries.list_sites)]

    async def ensure_exists(self, name: str) -> None:
        """Raises NotFound, naming a similar site or the known ones, unless `name` exists."""
        if await self.exists(name):
            return
        names = await self.names()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        if close:
            hint = f" Did you mean {' or '.join(quote(other) for other in close)}?"
        elif names:
            shown = ", ".join(names[:_NAMES_SHOWN]) + (", ..." if len(names) > _NAMES_SHOWN else "")
            hint = f" The sites are: {shown}."
        else:
            hint = " No site is registered yet: add one with 'obsrelay sites add NAME'."
        raise NotFound(f"There is no site {quote(name)}.{hint}")
