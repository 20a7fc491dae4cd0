"""The Redis bus, for several server processes: one pub/sub channel for all sites.

A lost connection is retried with back-off and logged once per outage. Publishing
never makes a request wait for Redis: messages go to a bounded queue that one task
sends from; while Redis is away they are dropped (the store keeps every event, and
every process re-reads the store on a short timer and when Redis comes back). What
queued up while the task was sending goes in one round trip, a site's Committed
notices merged into one (`coalesce`): under load, far fewer messages for every process.
"""

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from obsrelay.bus.base import Bus, BusHandler
from obsrelay.bus.notices import Committed, Live, Resync, coalesce, decode, encode

log = logging.getLogger("obsrelay.bus")
CHANNEL = "obsrelay:events"
_MAX_BACKOFF = 5.0
_OUTBOX_SIZE = 10_000


class RedisBus(Bus):
    def __init__(self, url: str) -> None:
        self._url = url
        self._client = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=None, health_check_interval=10
        )
        self._publisher = aioredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        self._listener: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[Committed | Live] = asyncio.Queue(_OUTBOX_SIZE)
        self._connected = False

    @property
    def healthy(self) -> bool:
        return self._connected

    async def start(self, handler: BusHandler) -> None:
        loop = asyncio.get_running_loop()
        self._listener = loop.create_task(self._listen(handler))
        self._sender = loop.create_task(self._send_forever())

    async def _listen(self, handler: BusHandler) -> None:
        backoff = 0.1
        outage = False
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self._connected = True
                if outage:
                    log.warning("event bus: reconnected to Redis")
                    self.reconnects += 1
                    # Whatever was published meanwhile is in the store: say so.
                    handler(Resync())
                outage, backoff = False, 0.1
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        notice = decode(message["data"])
                    except (ValueError, TypeError):
                        log.warning("event bus: ignored a malformed message")
                        continue
                    handler(notice)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                self._connected = False
                if not outage:
                    log.warning("event bus: lost Redis (%s); retrying with back-off", error)
                    outage = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def publish(self, notice: Committed | Live) -> None:
        # When Redis is away and the backlog is full, drop it: the store has the events.
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(notice)

    async def _send_forever(self) -> None:
        failing = False
        while True:
            queued = [await self._outbox.get()]
            while not self._outbox.empty():
                queued.append(self._outbox.get_nowait())
            try:
                async with self._publisher.pipeline(transaction=False) as pipe:
                    for notice in coalesce(queued):
                        pipe.publish(CHANNEL, encode(notice))
                    await pipe.execute()
            except (RedisError, OSError) as error:
                if not failing:
                    log.warning("event bus: cannot publish to Redis (%s); dropping", error)
                    failing = True
                continue
            if failing:
                log.warning("event bus: publishing to Redis again")
                failing = False

    async def close(self) -> None:
        for task in (self._listener, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._client.aclose()
        await self._publisher.aclose()
