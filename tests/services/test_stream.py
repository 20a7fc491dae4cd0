"""The datastream's event log: numbers per site, visible in commit order; and the Hub's
batches under load (both backends)."""

import asyncio
import time

import sqlalchemy as sa

from obsrelay.bus.memory import MemoryBus
from obsrelay.services.stream import EventLog, Hub, Render, Rendered, StreamEvent, encode
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


def _render(event: StreamEvent) -> bytes:
    return f"<{event.seq}>".encode()


class _Recorder:
    """A subscriber that keeps each batch it is offered: (seq or topic) per event. Each
    offer blocks the loop for `cost_seconds`, as a fan-out to many sockets does."""

    def __init__(self, site: str, cost_seconds: float = 0.0) -> None:
        self.site = site
        self.render: Render = _render
        self.cost_seconds = cost_seconds
        self.batches: list[list[object]] = []
        self.joined: list[bytes] = []
        self._unread: asyncio.Queue[list[object]] = asyncio.Queue()

    def offer(self, batch: Rendered) -> None:
        time.sleep(self.cost_seconds)
        self.batches.append([event.seq or event.topic for event, _ in batch.items])
        self.joined.append(batch.joined)
        self._unread.put_nowait(self.batches[-1])

    async def replay(self, event: StreamEvent, frame: bytes) -> None:
        raise AssertionError("not replaying here")

    async def next_batch(self, within: float = 10) -> list[object]:
        return await asyncio.wait_for(self._unread.get(), within)


async def _following(db: Database, site: str, batch_seconds: float, cost_seconds: float = 0.1):
    """A Hub on the memory bus with a _Recorder subscribed to `site`, and the event log.
    By default each fan-out costs 0.1 s, so that the Hub holds the next read 0.2 s (at
    most `batch_seconds`)."""
    bus = MemoryBus()
    events = EventLog(db, bus)
    hub = Hub(events, batch_seconds=batch_seconds)
    await hub.start()
    await bus.start(hub.on_notice)
    recorder = _Recorder(site, cost_seconds)
    await hub.subscribe(recorder)
    return hub, events, recorder


async def _post(db: Database, events: EventLog, site: str, count: int) -> None:
    def append(conn: sa.Connection) -> list[StreamEvent]:
        data = [encode({"i": i}) for i in range(count)]
        return EventLog.append(conn, site, "userstatus", data, _now_ms())

    await events.announce(await db.write(append))


async def test_under_load_a_sites_events_go_out_in_one_batch_after_the_first(
    db: Database, site: str
):
    # A costly fan-out and a long cap, so that what the test posts meanwhile is held.
    hub, events, recorder = await _following(db, site, batch_seconds=0.5)
    try:
        await _post(db, events, site, 1)
        assert await recorder.next_batch() == [1]  # the first after a quiet spell: at once
        for _ in range(3):
            await _post(db, events, site, 1)
        # Held, then sent together, in order, each once.
        assert await recorder.next_batch() == [2, 3, 4]
        assert recorder.joined[-1] == b"<2><3><4>"
        assert recorder.batches == [[1], [2, 3, 4]]
    finally:
        await hub.close()


async def test_a_live_event_during_a_hold_follows_the_stored_ones_before_it(
    db: Database, site: str
):
    hub, events, recorder = await _following(db, site, batch_seconds=0.5)
    try:
        await _post(db, events, site, 1)
        assert await recorder.next_batch() == [1]
        await _post(db, events, site, 2)  # held
        await events.publish_live(site, "sitestatus", {"ok": True})
        assert await recorder.next_batch() == [2, 3]
        assert await recorder.next_batch() == ["sitestatus"]
    finally:
        await hub.close()


async def test_a_cheap_fan_out_is_hardly_held(db: Database, site: str):
    # A cap of 20 s, but fan-outs that cost next to nothing: each event goes out alone,
    # long before the cap.
    hub, events, recorder = await _following(db, site, batch_seconds=20, cost_seconds=0)
    try:
        for seq in (1, 2, 3):
            await _post(db, events, site, 1)
            assert await recorder.next_batch(within=5) == [seq]
    finally:
        await hub.close()


async def test_without_a_hold_every_notice_is_read_at_once(db: Database, site: str):
    hub, events, recorder = await _following(db, site, batch_seconds=0)
    try:
        for seq in (1, 2, 3):
            await _post(db, events, site, 1)
            assert await recorder.next_batch() == [seq]
    finally:
        await hub.close()
