"""The stream's events: appended to the store's log in the writing transaction,
announced on the bus after the commit, and fanned out by the Hub to subscribers.

An event holds obsrelay's own shapes: a "job" event the job as it is now
(`Job.to_data`), a "message" event the message with its id (`Message.to_data`).
Each subscriber brings its own renderer, which makes the frame it sends: the
compatible datastream renders the hosted service's frames (api/compat/datastream.py),
the native stream its own (api/v1/stream.py). Each batch is rendered once per
renderer in use, whatever the number of subscribers.

The store is the truth and the bus only says "site X has event n": a Hub that misses
a notification finds the event anyway on its next read (at the latest on the
re-check timer), and a subscriber resuming from event n is replayed everything after
n from the store.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from obsrelay.bus import Bus, Committed, Live, Notice, Resync
from obsrelay.store import stream as queries
from obsrelay.store.database import Database, DatabaseUnavailable

log = logging.getLogger("obsrelay.stream")

TOPIC_JOB = "job"
TOPIC_MESSAGE = "message"
# A site went online or offline (services/presence.py): live only, native stream only.
TOPIC_PRESENCE = "presence"
OWN_TOPICS = frozenset({TOPIC_JOB, TOPIC_MESSAGE, TOPIC_PRESENCE})
_PAGE = 500


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of a site's stream: `data_json` is its data as JSON text.

    `seq` is None for a live-only event (not stored).
    """

    site: str
    topic: str
    data_json: str
    seq: int | None = None


# One encoder: `json.dumps` with an option builds a new one each call. Event data is
# plain data, built by obsrelay (a job, a message, a presence change) or decoded from a
# request's JSON (a live event), so it cannot refer to itself: the check for that (an
# eighth of each encoding) is left out.
_COMPACT = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def encode(data: Any) -> str:
    """JSON text for an event's data (made once, stored and sent as it is)."""
    return _COMPACT.encode(data)


class EventLog:
    """The per-site event log in the store, and the notices on the bus."""

    def __init__(self, db: Database, bus: Bus) -> None:
        self._db = db
        self._bus = bus

    @staticmethod
    def append(
        conn: sa.Connection, site: str, topic: str, items: list[str], now_ms: int
    ) -> list[StreamEvent]:
        """Stores events (data as JSON text) inside the caller's write transaction, as its
        last step: the site's stream stays locked from here to the commit.

        Returns them numbered.
        """
        if not items:
            return []
        first = queries.append_events(conn, site, topic, items, now_ms)
        return EventLog.numbered(site, topic, items, first)

    @staticmethod
    def numbered(site: str, topic: str, items: list[str], first: int) -> list[StreamEvent]:
        """The events of `items` (data as JSON text), stored in order from number `first`."""
        return [StreamEvent(site, topic, data, first + offset) for offset, data in enumerate(items)]

    async def announce(
        self, events: Iterable[StreamEvent], *, new_jobs_at: Iterable[str] = ()
    ) -> None:
        """Tells every process, after the commit, the newest event of each site touched.

        `new_jobs_at`: the sites that have a new job to claim; their notice says so
        ("jobs"), which wakes the claims waiting there (services/waiting.py).
        """
        newest: dict[str, int] = {}
        for event in events:
            if event.seq is not None:
                newest[event.site] = max(newest.get(event.site, 0), event.seq)
        with_jobs = set(new_jobs_at)
        for site, seq in newest.items():
            await self._bus.publish(Committed(site, seq, new_jobs=site in with_jobs))

    async def publish_live(self, site: str, topic: str, data: Any) -> None:
        """Sends an event that is not stored to the site's subscribers on every process."""
        await self._bus.publish(Live(site, topic, data))

    async def read_after(self, site: str, seq: int, limit: int = _PAGE) -> list[StreamEvent]:
        rows = await self._db.read(lambda conn: queries.events_after(conn, site, seq, limit))
        return [StreamEvent(row.site, row.topic, row.data, row.seq) for row in rows]

    async def head(self, site: str) -> int:
        return await self._db.read(lambda conn: queries.head(conn, site))

    async def sites(self) -> list[tuple[str, int]]:
        """Every site with a stream (any job or message ever), with its head."""
        return await self._db.read(queries.sites)

    async def delete_before(self, at_ms: int, batch: int) -> int:
        return await self._db.write(lambda conn: queries.delete_events_before(conn, at_ms, batch))


# An event's frame for one kind of stream; empty when that stream does not carry it.
Render = Callable[[StreamEvent], bytes]


@dataclass(frozen=True, slots=True)
class Rendered:
    """A batch of one site's events, in order, rendered for one kind of stream.

    `frames` are the batch's frames (the empty ones left out), and `joined` the same in
    one piece, for a subscriber that has none of its events yet (`news_to`): every
    subscriber but one that is replaying.
    """

    site: str
    items: list[tuple[StreamEvent, bytes]]
    frames: list[bytes]
    joined: bytes
    first_seq: int | None  # the lowest stored event's number, None if only live ones
    last_seq: int | None

    @classmethod
    def of(cls, site: str, events: list[StreamEvent], render: Render) -> "Rendered":
        items = [(event, render(event)) for event in events]
        stored = [event.seq for event in events if event.seq is not None]
        frames = [frame for _, frame in items if frame]
        first, last = min(stored, default=None), max(stored, default=None)
        return cls(site, items, frames, b"".join(frames), first, last)

    def news_to(self, site: str, cursor: int) -> bool:
        """Whether a subscriber of `site` that was given up to `cursor` needs all of it."""
        return site == self.site and (self.first_seq is None or self.first_seq > cursor)


class Subscriber(Protocol):
    """A receiver of one site's events (a websocket connection), and how it renders them."""

    site: str
    render: Render

    def offer(self, batch: Rendered) -> None:
        """Takes events, in order, rendered by its renderer, without waiting."""

    async def replay(self, event: StreamEvent, frame: bytes) -> None:
        """Takes a replayed event, waiting for room if it has to."""


@dataclass
class _Feed:
    """What this process follows of one site: its subscribers and the last event read."""

    site: str
    last_seq: int = 0
    # By renderer: each batch is rendered once for all the subscribers that share one.
    subscribers: dict[Render, set[Subscriber]] = field(default_factory=dict)
    reading: bool = False
    stale: bool = False
    # Live-only events that came while stored ones were being read: they follow those.
    waiting_live: list[StreamEvent] = field(default_factory=list)
    # The loop's time before which the next read waits (see Hub: batches under load).
    next_read_at: float = 0.0

    def add(self, subscriber: Subscriber) -> None:
        self.subscribers.setdefault(subscriber.render, set()).add(subscriber)

    def discard(self, subscriber: Subscriber) -> None:
        alike = self.subscribers.get(subscriber.render)
        if alike is not None:
            alike.discard(subscriber)
            if not alike:
                del self.subscribers[subscriber.render]

    def fan_out(self, events: list[StreamEvent]) -> None:
        """Gives `events` to every subscriber, rendered once per renderer."""
        for render, alike in list(self.subscribers.items()):
            batch = Rendered.of(self.site, events, render)
            for subscriber in list(alike):
                subscriber.offer(batch)


# After a fan-out, a site's next read waits this many times as long as the fan-out took
# (at most the Hub's `batch_seconds`): its fan-outs then take at most a third of the time.
HOLD_PER_FAN_OUT = 2.0


class Hub:
    """Fans a site's events out to this process's subscribers of that site.

    One read of the store per notification and site serves every subscriber; each
    event is rendered (to the bytes subscribers send) once per renderer.

    Under load the reads of a site are paced: the first event after a quiet spell goes
    out at once, and after each fan-out the next read of that site waits
    `HOLD_PER_FAN_OUT` times as long as the fan-out took, at most `batch_seconds`,
    taking everything committed meanwhile as one batch. Each subscriber is sent a batch
    in one write, so a site's fan-outs take at most a third of the loop's time, whatever
    the rate of events; a site with few subscribers is hardly held at all (see
    docs/adr/0010).
    """

    def __init__(
        self, log_: EventLog, recheck_seconds: float = 1.0, batch_seconds: float = 0.0
    ) -> None:
        self._log = log_
        self._recheck_seconds = recheck_seconds
        self._batch_seconds = batch_seconds
        self._feeds: dict[str, _Feed] = {}
        self._opening: dict[str, asyncio.Future[_Feed]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._rechecker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._rechecker = asyncio.get_running_loop().create_task(self._recheck_forever())

    async def close(self) -> None:
        for task in [self._rechecker, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def on_notice(self, notice: Notice) -> None:
        """The bus handler: reads the store for a stored event, passes a live one on."""
        if isinstance(notice, Resync):
            for followed in self._feeds.values():
                self._read_soon(followed)
            return
        feed = self._feeds.get(notice.site)
        if feed is None:
            return
        if isinstance(notice, Committed):
            if notice.seq > feed.last_seq:
                self._read_soon(feed)
            return
        event = StreamEvent(feed.site, notice.topic, encode(notice.data))
        if feed.reading:
            feed.waiting_live.append(event)
            return
        feed.fan_out([event])

    async def subscribe(self, subscriber: Subscriber, since: int | None = None) -> int:
        """Adds a subscriber to its site; with `since`, first replays the events after it.

        Returns the subscriber's position: the number of the last event it was given.
        Live events that arrive during the replay reach the subscriber after it, in
        order, without a duplicate (the subscriber drops what it was already given).
        """
        feed = await self._feed(subscriber.site)
        feed.add(subscriber)
        if since is None or since >= feed.last_seq:
            return max(feed.last_seq, since or 0)
        position = since
        while True:
            events = await self._log.read_after(feed.site, position, _PAGE)
            for event in events:
                await subscriber.replay(event, subscriber.render(event))
            if events:
                position = events[-1].seq or position
            if len(events) < _PAGE:
                return position

    async def move(self, subscriber: Subscriber, site: str) -> int:
        """Moves a subscriber to another site, live from now; returns its new position."""
        self.unsubscribe(subscriber)
        subscriber.site = site
        feed = await self._feed(site)
        feed.add(subscriber)
        return feed.last_seq

    def unsubscribe(self, subscriber: Subscriber) -> None:
        feed = self._feeds.get(subscriber.site)
        if feed is not None:
            feed.discard(subscriber)
            if not feed.subscribers and not feed.reading:
                del self._feeds[feed.site]

    async def _feed(self, site: str) -> _Feed:
        known = self._feeds.get(site)
        if known is not None:
            return known
        opening = self._opening.get(site)
        if opening is None:
            opening = asyncio.get_running_loop().create_future()
            self._opening[site] = opening
            try:
                feed = _Feed(site, last_seq=await self._log.head(site))
                self._feeds[site] = feed
                opening.set_result(feed)
            except BaseException as error:
                opening.set_exception(error)
                raise
            finally:
                del self._opening[site]
            return feed
        return await asyncio.shield(opening)

    def _read_soon(self, feed: _Feed) -> None:
        if feed.reading:
            feed.stale = True
            return
        feed.reading = True
        task = asyncio.get_running_loop().create_task(self._read(feed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, feed: _Feed) -> None:
        """Reads and fans out every event after the feed's position, paced."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                wait = feed.next_read_at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                feed.stale = False
                events = await self._log.read_after(feed.site, feed.last_seq, _PAGE)
                if events:
                    began = time.perf_counter()
                    feed.fan_out(events)
                    took = time.perf_counter() - began
                    feed.last_seq = events[-1].seq or feed.last_seq
                    hold = min(self._batch_seconds, HOLD_PER_FAN_OUT * took)
                    feed.next_read_at = loop.time() + hold
                if len(events) < _PAGE and not feed.stale:
                    return
        except DatabaseUnavailable:
            pass  # the database logs its outage once; the re-check reads again
        except Exception:
            log.exception("reading the stream of %s failed; the re-check will retry", feed.site)
        finally:
            feed.reading = False
            waiting, feed.waiting_live = feed.waiting_live, []
            if waiting:
                feed.fan_out(waiting)
            if not feed.subscribers and self._feeds.get(feed.site) is feed:
                del self._feeds[feed.site]

    async def _recheck_forever(self) -> None:
        """Re-reads every followed site now and then, in case a notification was lost."""
        while True:
            await asyncio.sleep(self._recheck_seconds)
            for feed in list(self._feeds.values()):
                self._read_soon(feed)
