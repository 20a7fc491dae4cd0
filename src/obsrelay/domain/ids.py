"""ULIDs that sort in issue order, even for several made in the same millisecond."""

import os
import threading

from ulid import ULID

_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1


def ulid_floor(timestamp_ms: int) -> str:
    """The smallest ULID with this timestamp: every ULID made at or after it sorts >= it."""
    return str(ULID.from_bytes(max(timestamp_ms, 0).to_bytes(6, "big") + bytes(10)))


class MonotonicUlids:
    """Makes ULIDs that strictly increase within this process.

    A plain ULID draws fresh random bits each time, so two made in the same millisecond
    sort by chance. Jobs must sort in the order they were issued, so within one
    millisecond (or if the clock steps back) the random part is incremented instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def new(self, now_ms: int) -> str:
        with self._lock:
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                # Leave headroom so increments within the millisecond cannot overflow.
                self._last_random = int.from_bytes(os.urandom(10), "big") >> 1
            else:
                self._last_random += 1
                if self._last_random > _RANDOM_MAX:
                    self._last_ms += 1
                    self._last_random = 0
            raw = self._last_ms.to_bytes(6, "big") + self._last_random.to_bytes(10, "big")
        return str(ULID.from_bytes(raw))
