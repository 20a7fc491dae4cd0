"""Site presence, as rules: which calls are a site's signs of life, when a site counts as
online, and since when it is in its state. Pure: no I/O; services/presence.py keeps the
sightings and stores them.

Every call a site's software makes, once it is let in, is a sign of life: a poll or
claim on either queue, a status report, a message, a live event. A site is online while
its last sign of life is at most `offline_after` old. It has been online since the
first sign of life after a silence longer than that, and offline since its last sign
of life plus `offline_after` (or since it was registered, if it was never seen).
"""

from dataclasses import dataclass
from enum import StrEnum

from obsrelay.domain.jobs import Queue


class Call(StrEnum):
    """The kinds of call a site makes; each has its own last-seen time."""

    POLL_PRIMARY = "poll_primary"
    POLL_ALTERNATE = "poll_alternate"
    STATUS = "status"
    MESSAGE = "message"
    EVENT = "event"

    @classmethod
    def poll(cls, queue: Queue) -> "Call":
        return cls.POLL_ALTERNATE if queue is Queue.ALTERNATE else cls.POLL_PRIMARY


@dataclass(frozen=True)
class Standing:
    """A site's state as stored: online or not, since when, and when it was last seen."""

    online: bool
    since_ms: int
    last_seen_ms: int | None


def current_state(stored: Standing, now_ms: int, offline_after_ms: int) -> tuple[bool, int]:
    """(online, since when) at `now_ms`, from the stored standing.

    The stored flag lags (the sweep that turns it offline runs every few seconds), so
    the state is worked out from the last sign of life; the stored `since` holds only
    for the state that is still true.
    """
    last = stored.last_seen_ms
    if last is None:
        return False, stored.since_ms
    if now_ms - last <= offline_after_ms:
        return True, stored.since_ms if stored.online else last
    return False, stored.since_ms if not stored.online else last + offline_after_ms


def came_back(stored: Standing, first_seen_ms: int, offline_after_ms: int) -> bool:
    """Whether sightings from `first_seen_ms` on bring a site back online: it is stored
    offline, or its last sign of life is older than the offline threshold (no sweep
    marked it, e.g. while every process was down)."""
    if not stored.online or stored.last_seen_ms is None:
        return True
    return first_seen_ms - stored.last_seen_ms > offline_after_ms


def went_silent(stored: Standing, now_ms: int, offline_after_ms: int) -> bool:
    """Whether a site stored online has been silent too long and goes offline now."""
    return (
        stored.online
        and stored.last_seen_ms is not None
        and now_ms - stored.last_seen_ms > offline_after_ms
    )
