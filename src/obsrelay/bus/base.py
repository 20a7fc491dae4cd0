"""What every bus does."""

from collections.abc import Callable

from obsrelay.bus.notices import Committed, Live, Notice

BusHandler = Callable[[Notice], None]


class Bus:
    """Publishes notices to every process's handler, including this one's."""

    # Times the bus came back after losing its connection (for the metrics).
    reconnects = 0

    async def start(self, handler: BusHandler) -> None:
        """Starts delivering every published notice to `handler` (in the event loop)."""
        raise NotImplementedError

    async def publish(self, notice: Committed | Live) -> None:
        """Sends `notice`; never raises (a lost notice is recovered from the store)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    @property
    def healthy(self) -> bool:
        """Whether the bus is connected right now."""
        return True
