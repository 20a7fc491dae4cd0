"""What every bus does."""

from collections.abc import Callable
from typing import Any

BusHandler = Callable[[dict[str, Any]], None]


class Bus:
    """Publishes notifications to every process's handler, including this one's."""

    async def start(self, handler: BusHandler) -> None:
        """Starts delivering every published message to `handler` (in the event loop)."""
        raise NotImplementedError

    async def publish(self, message: dict[str, Any]) -> None:
        """Sends `message`; never raises (a lost notification is recovered from the store)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    @property
    def healthy(self) -> bool:
        """Whether the bus is connected right now."""
        return True
