"""User status messages: what a site tells the people watching it. Pure: no I/O, no clock."""

import math
from dataclasses import dataclass
from typing import Any

from obsrelay.domain.errors import InvalidInput
from obsrelay.domain.values import check_string, quote

LEVELS = ("debug", "info", "warning", "error", "critical")
_LEVEL_ALIASES = {"warn": "warning"}
DEFAULT_LEVEL = "info"
MAX_MESSAGE_BYTES = 16 * 1024
# A site's clock may run a little fast; a message dated further ahead is a mistake.
MAX_FUTURE_SECONDS = 86400.0


@dataclass(frozen=True, slots=True)
class Message:
    """A stored user status message; `ulid` orders messages as they were stored."""

    ulid: str
    site: str
    timestamp: float
    level: str
    message: str

    def to_data(self) -> dict[str, Any]:
        """The message as plain data: obsrelay's own shape, which the native API serves,
        the stream stores, and the compatible API translates (api/compat/wire.py)."""
        return {
            "ulid": self.ulid,
            "site": self.site,
            "message": self.message,
            "level": self.level,
            "timestamp": self.timestamp,
        }


def normalize_level(value: object) -> str:
    """A level in any case; missing means info, WARN means warning."""
    if value is None:
        return DEFAULT_LEVEL
    if not isinstance(value, str):
        raise InvalidInput(f"'log_level' must be a string such as 'info', not {quote(value)}.")
    level = value.strip().lower()
    level = _LEVEL_ALIASES.get(level, level)
    if level not in LEVELS:
        raise InvalidInput(
            f"'log_level' must be one of {', '.join(LEVELS)} (or warn), not {quote(value)}."
        )
    return level


def validate_text(value: object, field: str = "log_message") -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"'{field}' must be a string.")
    check_string(value, field)
    if len(value.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise InvalidInput(f"'{field}' is longer than {MAX_MESSAGE_BYTES // 1024} KiB.")
    return value


def validate_timestamp(value: object, now: float) -> float:
    """Seconds since the epoch (a float); missing means now."""
    if value is None:
        return now
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"'timestamp' must be seconds since the epoch, not {quote(value)}.")
    timestamp = float(value)
    if not math.isfinite(timestamp) or timestamp < 0:
        raise InvalidInput("'timestamp' must be a positive number of seconds since the epoch.")
    if timestamp > now + MAX_FUTURE_SECONDS:
        raise InvalidInput("'timestamp' is more than a day in the future; check the site's clock.")
    return timestamp
