"""The event bus: says "site X changed" to every server process. Never the only copy.

`memory://` serves one process; `redis://` several. A message is a small JSON object:
`{"site": ..., "seq": n}` after an event was committed to the store, or
`{"site": ..., "topic": ..., "data": ...}` for a live-only event that is not stored.
"""

from obsrelay.bus.base import Bus, BusHandler
from obsrelay.bus.memory import MemoryBus


def open_bus(url: str) -> Bus:
    """The bus for a URL from the settings (memory:// or redis://host:port/db)."""
    if url.startswith(("redis://", "rediss://")):
        from obsrelay.bus.redis import RedisBus

        return RedisBus(url)
    return MemoryBus()


__all__ = ["Bus", "BusHandler", "MemoryBus", "open_bus"]
