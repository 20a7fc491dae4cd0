"""The event bus: says "site X changed" to every server process. Never the only copy.

`memory://` serves one process; `redis://` several. What it carries is in notices.py.
"""

from obsrelay.bus.base import Bus, BusHandler
from obsrelay.bus.memory import MemoryBus
from obsrelay.bus.notices import Committed, Live, Notice, Resync


def open_bus(url: str) -> Bus:
    """The bus for a URL from the settings (memory:// or redis://host:port/db)."""
    if url.startswith(("redis://", "rediss://")):
        from obsrelay.bus.redis import RedisBus

        return RedisBus(url)
    return MemoryBus()


__all__ = [
    "Bus",
    "BusHandler",
    "Committed",
    "Live",
    "MemoryBus",
    "Notice",
    "Resync",
    "open_bus",
]
