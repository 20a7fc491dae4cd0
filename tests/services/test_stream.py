"""The datastream's event log: numbers per site, visible in commit order (both backends)."""

import asyncio
import time

import sqlalchemy as sa

from obsrelay.services.stream import EventLog, encode
from obsrelay.store.database import Database


def _now_ms() -> int:
    """The events' time: real, since the retention sweeps of the servers sharing this
    test database delete events older than 7 days, and one dated 1970 at once."""
    return int(time.time() * 1000)


async def test_a_reader_following_the_log_never_skips_a_late_commit(
    db: Database, events: EventLog, site: str
):
    writers, per_writer = 20, 15
    done = asyncio.Event()

    async def write(writer: int) -> None:
        for i in range(per_writer):

            def append(conn: sa.Connection, i: int = i) -> None:
                data = [encode({"w": writer, "i": i})]
                EventLog.append(conn, site, "userstatus", data, _now_ms())
                # Hold the transaction open a little, as a slow writer would.
                conn.execute(sa.text("SELECT 1"))

            await db.write(append)

    seen: list[int] = []

    async def follow() -> None:
        cursor = 0
        while True:
            finished = done.is_set()
            for event in await events.read_after(site, cursor):
                assert event.seq == cursor + 1, f"skipped from {cursor} to {event.seq}"
                cursor = event.seq
                seen.append(event.seq)
            if finished:
                return
            await asyncio.sleep(0)

    reader = asyncio.create_task(follow())
    await asyncio.gather(*(write(w) for w in range(writers)))
    done.set()
    await reader
    assert seen == list(range(1, writers * per_writer + 1))
    assert await events.head(site) == writers * per_writer


async def test_sites_are_numbered_apart(db: Database, events: EventLog, site: str):
    other = site + "-b"

    def append(conn: sa.Connection) -> None:
        EventLog.append(conn, site, "jobs", [encode(1), encode(2)], _now_ms())
        EventLog.append(conn, other, "jobs", [encode(3)], _now_ms())

    await db.write(append)
    assert [e.seq for e in await events.read_after(site, 0)] == [1, 2]
    assert [(e.seq, e.data_json) for e in await events.read_after(other, 0)] == [(1, "3")]
