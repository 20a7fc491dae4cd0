"""Queries on `site_presence`, and the reads that make up the sites' overview.

Functions of a Connection, run by `Database.read` or `Database.write`; none commits.
The rules (when a site is online, when it came back) are domain/presence.py's; these
functions store their outcome, and take the row locks that let only one process
record each change of state.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from obsrelay.domain.jobs import QueueState
from obsrelay.domain.presence import Call, Standing, came_back, went_silent
from obsrelay.store.schema import HELD_PRIMARY, jobs, messages, site_presence, sites


@dataclass(frozen=True)
class PresenceRow:
    site: str
    standing: Standing
    calls: dict[Call, int | None]


@dataclass(frozen=True)
class Change:
    """A site that went online or offline, as this transaction recorded it.

    `last_seen_ms`: its last call before the change. `was_since_ms`: since when it
    had been in the state it left, if that state was recorded.
    """

    site: str
    online: bool
    since_ms: int
    last_seen_ms: int | None = None
    was_since_ms: int | None = None


@dataclass
class Sightings:
    """One process's signs of life of one site since its last flush: the first, and the
    last of each kind of call."""

    first_ms: int
    calls: dict[Call, int]

    @property
    def last_ms(self) -> int:
        return max(self.calls.values())


def _insert_ignoring_existing(dialect: str) -> sa.UpdateBase:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(site_presence).on_conflict_do_nothing(index_elements=[site_presence.c.site])


_ADD_UNSEEN = {dialect: _insert_ignoring_existing(dialect) for dialect in ("postgresql", "sqlite")}


def _presence_row(row: sa.Row[Any]) -> PresenceRow:
    m = row._mapping
    return PresenceRow(
        site=m["site"],
        standing=Standing(bool(m["online"]), m["since_ms"], m["last_seen_ms"]),
        calls={call: m[f"{call}_ms"] for call in Call},
    )


def record(
    conn: sa.Connection, seen: Mapping[str, Sightings], offline_after_ms: int
) -> list[Change]:
    """Adds sightings to the registered sites' rows; returns the sites that came online.

    Sightings of a name that is not registered are dropped. Rows are locked in name
    order, so that processes flushing at once wait for each other instead of
    deadlocking, and each change of state is recorded by one of them only.
    """
    names = sorted(seen)
    registered = sorted(
        conn.execute(sa.select(sites.c.name).where(sites.c.name.in_(names))).scalars()
    )
    if not registered:
        return []
    conn.execute(
        _ADD_UNSEEN[conn.dialect.name],
        [
            {"site": name, "online": False, "since_ms": seen[name].first_ms, "last_seen_ms": None}
            for name in registered
        ],
    )
    locked = conn.execute(
        sa.select(site_presence)
        .where(site_presence.c.site.in_(registered))
        .order_by(site_presence.c.site)
        .with_for_update()
    )
    changes = []
    for stored in [_presence_row(row) for row in locked]:
        sightings = seen[stored.site]
        values: dict[str, Any] = {
            f"{call}_ms": max(at, stored.calls[call] or 0) for call, at in sightings.calls.items()
        }
        values["last_seen_ms"] = max(sightings.last_ms, stored.standing.last_seen_ms or 0)
        if came_back(stored.standing, sightings.first_ms, offline_after_ms):
            values.update(online=True, since_ms=sightings.first_ms)
            was_offline = not stored.standing.online and stored.standing.last_seen_ms is not None
            changes.append(
                Change(
                    stored.site,
                    True,
                    sightings.first_ms,
                    stored.standing.last_seen_ms,
                    stored.standing.since_ms if was_offline else None,
                )
            )
        conn.execute(
            site_presence.update().where(site_presence.c.site == stored.site).values(values)
        )
    return changes


def mark_silent(conn: sa.Connection, now_ms: int, offline_after_ms: int) -> list[Change]:
    """Marks offline the sites stored online and silent too long; returns them.

    The update re-checks its condition, so when several processes sweep at once, or a
    sighting is recorded meanwhile, each site changes once or not at all.
    """
    quiet_since = now_ms - offline_after_ms
    candidates = conn.execute(
        sa.select(site_presence).where(
            site_presence.c.online.is_(True), site_presence.c.last_seen_ms < quiet_since
        )
    )
    changes = []
    for stored in [_presence_row(row) for row in candidates]:
        if not went_silent(stored.standing, now_ms, offline_after_ms):
            continue
        assert stored.standing.last_seen_ms is not None
        since = stored.standing.last_seen_ms + offline_after_ms
        updated = conn.execute(
            site_presence.update()
            .where(
                site_presence.c.site == stored.site,
                site_presence.c.online.is_(True),
                site_presence.c.last_seen_ms < quiet_since,
            )
            .values(online=False, since_ms=since)
        ).rowcount
        if updated:
            last = stored.standing.last_seen_ms
            changes.append(Change(stored.site, False, since, last, stored.standing.since_ms))
    return changes


def offline_since_before(conn: sa.Connection, cutoff_ms: int) -> list[Change]:
    """The sites stored offline since before `cutoff_ms`, after having been seen."""
    query = sa.select(site_presence).where(
        site_presence.c.online.is_(False),
        site_presence.c.last_seen_ms.is_not(None),
        site_presence.c.since_ms < cutoff_ms,
    )
    return [
        Change(row.site, False, row.standing.since_ms, row.standing.last_seen_ms)
        for row in map(_presence_row, conn.execute(query))
    ]


def presence_of(conn: sa.Connection, names: Iterable[str]) -> dict[str, PresenceRow]:
    rows = conn.execute(sa.select(site_presence).where(site_presence.c.site.in_(list(names))))
    return {row.site: _presence_row(row) for row in rows}


@dataclass(frozen=True)
class HeldJob:
    """A job that a site holds on its primary queue (received or running)."""

    site: str
    ulid: str
    state: QueueState


def unread_summary(conn: sa.Connection, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Per site: (jobs unread on the primary queue, creation time of the oldest)."""
    query = (
        sa.select(jobs.c.site, sa.func.count(), sa.func.min(jobs.c.created_ms))
        .where(jobs.c.site.in_(list(names)), sa.text("primary_status = 'UNREAD'"))
        .group_by(jobs.c.site)
    )
    return {site: (int(count), int(oldest)) for site, count, oldest in conn.execute(query)}


def held_jobs(conn: sa.Connection, names: Iterable[str] | None, floor_ulid: str) -> list[HeldJob]:
    """The jobs the sites (None: every site) hold on the primary queue, submitted after
    `floor_ulid`."""
    query = sa.select(
        jobs.c.site,
        jobs.c.ulid,
        jobs.c.primary_status,
        jobs.c.primary_seconds,
        jobs.c.primary_updated_ms,
    ).where(sa.text(HELD_PRIMARY), jobs.c.ulid >= floor_ulid)
    if names is not None:
        query = query.where(jobs.c.site.in_(list(names)))
    return [
        HeldJob(site, ulid, QueueState(status, seconds, updated))
        for site, ulid, status, seconds, updated in conn.execute(query)
    ]


_LAST_MESSAGE = (
    sa.select(messages.c.level, messages.c.timestamp)
    .where(messages.c.site == sa.bindparam("site"))
    .order_by(messages.c.timestamp.desc())
    .limit(1)
)


def last_messages(conn: sa.Connection, names: Iterable[str]) -> dict[str, tuple[str, float]]:
    """Per site with any: (level, timestamp) of its latest message (one index probe each)."""
    found = {}
    for name in names:
        row = conn.execute(_LAST_MESSAGE, {"site": name}).first()
        if row is not None:
            found[name] = (row.level, row.timestamp)
    return found
