"""The in-process bus, for one server process (the default)."""

import asyncio

from obsrelay.bus.base import Bus, BusHandler
from obsrelay.bus.notices import Committed, Live


class MemoryBus(Bus):
    def __init__(self) -> None:
        self._handler: BusHandler | None = None

    async def start(self, handler: BusHandler) -> None:
        self._handler = handler

    async def publish(self, notice: Committed | Live) -> None:
        if self._handler is not None:
            # Delivered on the next turn of the loop, as a networked bus would.
            asyncio.get_running_loop().call_soon(self._handler, notice)

    async def close(self) -> None:
        self._handler = None
