"""The in-process bus, for one server process (the default)."""

import asyncio
from typing import Any

from obsrelay.bus.base import Bus, BusHandler


class MemoryBus(Bus):
    def __init__(self) -> None:
        self._handler: BusHandler | None = None

    async def start(self, handler: BusHandler) -> None:
        self._handler = handler

    async def publish(self, message: dict[str, Any]) -> None:
        if self._handler is not None:
            # Delivered on the next turn of the loop, as a networked bus would.
            asyncio.get_running_loop().call_soon(self._handler, message)

    async def close(self) -> None:
        self._handler = None
