"""User status messages: post one, read recent ones, page through them, forget old ones.

Every message is kept and streamed, however many share a second: each has its own
ULID. A message is stored and added to its site's datastream log in one transaction
(store/message_writes.py).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from obsrelay.domain import messages as rules
from obsrelay.domain.ids import MonotonicUlids
from obsrelay.domain.messages import Message
from obsrelay.metrics import Metrics
from obsrelay.services.alerts import Alerts
from obsrelay.services.stream import TOPIC_MESSAGE, EventLog, encode
from obsrelay.store import messages as queries
from obsrelay.store.database import Database
from obsrelay.store.message_writes import MessageWrites

DAY_SECONDS = 86400.0


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]
    next_after: str | None


class MessageService:
    def __init__(
        self,
        db: Database,
        events: EventLog,
        *,
        retention_seconds: float = 7 * DAY_SECONDS,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        alerts: Alerts | None = None,
    ) -> None:
        self._db = db
        self._events = events
        self._metrics = metrics or Metrics()
        self._alerts = alerts or Alerts(None)
        self._retention = retention_seconds
        self._clock = clock
        self._ulids = MonotonicUlids()
        self._writes = MessageWrites(db, TOPIC_MESSAGE)

    def _oldest_kept(self) -> float:
        return self._clock() - self._retention

    async def post(self, site: str, text: object, level: object, timestamp: object) -> Message:
        """Stores a message and streams it; raises InvalidInput naming what is wrong."""
        return (await self.post_many(site, [(text, level, timestamp)]))[0]

    async def post_many(
        self, site: str, items: list[tuple[object, object, object]]
    ) -> list[Message]:
        """Stores (text, level, timestamp) messages in one transaction, in order.

        Every item is checked before anything is stored: one bad item stores none.
        """
        now = self._clock()
        now_ms = int(now * 1000)
        batch = [
            Message(
                ulid=self._ulids.new(now_ms),
                site=site,
                timestamp=rules.validate_timestamp(timestamp, now),
                level=rules.normalize_level(level),
                message=rules.validate_text(text),
            )
            for text, level, timestamp in items
        ]

        data = [encode(message.to_data()) for message in batch]
        first = await self._writes.insert(site, batch, data, now_ms)
        await self._events.announce(EventLog.numbered(site, TOPIC_MESSAGE, data, first))
        for message in batch:
            self._metrics.messages.labels(site, message.level).inc()
        self._alerts.messages(batch)
        return batch

    async def since(self, site: str, after_timestamp: float | None = None) -> list[Message]:
        """`site`'s messages dated after `after_timestamp` (default: the last day)."""
        floor = self._clock() - DAY_SECONDS if after_timestamp is None else after_timestamp
        floor = max(floor, self._oldest_kept())
        return await self._db.read(lambda conn: queries.messages_since(conn, site, floor))

    async def page(
        self,
        site: str,
        *,
        after: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> MessagePage:
        """A page of `site`'s messages in the order they were stored."""
        not_before = max(since or 0.0, self._oldest_kept())
        found = await self._db.read(
            lambda conn: queries.page_messages(
                conn, site, not_before=not_before, after=after, limit=limit + 1
            )
        )
        more = len(found) > limit
        found = found[:limit]
        return MessagePage(found, found[-1].ulid if more else None)

    async def before(self, site: str, before: str, limit: int = 100) -> list[Message]:
        """The `limit` messages of `site` stored just before `before` (a ULID), oldest first:
        the page above the oldest one a reader has."""
        not_before = self._oldest_kept()
        return await self._db.read(
            lambda conn: queries.messages_before(
                conn, site, not_before=not_before, before=before, limit=limit
            )
        )

    async def forget_old(self, batch: int = 1000) -> int:
        """Deletes up to `batch` messages and stream events past the retention period."""
        oldest = self._oldest_kept()
        deleted = await self._db.write(
            lambda conn: queries.delete_messages_before(conn, oldest, batch)
        )
        return deleted + await self._events.delete_before(int(oldest * 1000), batch)
