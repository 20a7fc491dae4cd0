"""The Redis bus, for several server processes: one pub/sub channel for all sites.

A lost connection is retried with back-off and logged once per outage; publishing
while it is down drops the notification (the store keeps the event, and every
process re-reads the store on a short timer) and never fails a request.
"""

import asyncio
import contextlib
import json
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from obsrelay.bus.base import Bus, BusHandler

log = logging.getLogger("obsrelay.bus")
CHANNEL = "obsrelay:events"
_MAX_BACKOFF = 5.0


class RedisBus(Bus):
    def __init__(self, url: str) -> None:
        self._url = url
        self._client = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=None, health_check_interval=10
        )
        self._publisher = aioredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        self._listener: asyncio.Task[None] | None = None
        self._connected = False
        self._publish_failing = False

    @property
    def healthy(self) -> bool:
        return self._connected

    async def start(self, handler: BusHandler) -> None:
        self._listener = asyncio.get_running_loop().create_task(self._listen(handler))

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
                    # Whatever was published meanwhile is in the store: say so.
                    handler({"resync": True})
                outage, backoff = False, 0.1
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        handler(json.loads(message["data"]))
                    except (ValueError, TypeError):
                        log.warning("event bus: ignored a malformed message")
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
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def publish(self, message: dict[str, Any]) -> None:
        try:
            await self._publisher.publish(CHANNEL, json.dumps(message, separators=(",", ":")))
        except (RedisError, OSError) as error:
            if not self._publish_failing:
                log.warning("event bus: cannot publish to Redis (%s)", error)
                self._publish_failing = True
            return
        if self._publish_failing:
            log.warning("event bus: publishing to Redis again")
            self._publish_failing = False

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._client.aclose()
        await self._publisher.aclose()
