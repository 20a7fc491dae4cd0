"""The hosted services' wire forms: their loose inputs read as their clients send them,
and their JSON written as those clients have always seen it, from obsrelay's own
shapes (`Job.to_data()`, `Message.to_data()`)."""

import json
from typing import Any

from obsrelay.domain.errors import InvalidInput
from obsrelay.domain.jobs import Queue
from obsrelay.domain.values import quote

_TRUE_WORDS = {"true", "1", "yes", "y", "on"}
_FALSE_WORDS = {"false", "0", "no", "n", "off", ""}


def job_to_wire(job: dict[str, Any]) -> dict[str, Any]:
    """A job (as `Job.to_data()` gives it) with every key the site software and browser
    index (docs/compatibility.md, section 2).

    `statusId` ("{STATUS}#{ulid}") and `secondsUntilComplete` are the primary queue's;
    the alternate queue's state is in `alternateStatusId` and
    `alternateSecondsUntilComplete`.
    """
    ulid, primary, alternate, user = job["ulid"], job["primary"], job["alternate"], job["user"]
    return {
        "site": job["site"],
        "ulid": ulid,
        "statusId": f"{primary['status']}#{ulid}",
        "timestamp_ms": job["created_ms"],
        "deviceType": job["device"],
        "deviceInstance": job["instance"],
        "action": job["action"],
        "required_params": job["required_params"],
        "optional_params": job["optional_params"],
        "user_name": user["name"],
        "user_id": user["id"],
        "user_roles": user["roles"],
        "secondsUntilComplete": primary["seconds_until_complete"],
        "alternateStatusId": f"{alternate['status']}#{ulid}",
        "alternateSecondsUntilComplete": alternate["seconds_until_complete"],
    }


def message_to_wire(message: dict[str, Any]) -> dict[str, Any]:
    """A message (as `Message.to_data()` gives it) in the shape both `recent-logs` and
    the datastream's `userstatus` frames carry."""
    return {
        "site": message["site"],
        "message": message["message"],
        "log_level": message["level"],
        "timestamp": message["timestamp"],
    }


# One encoder: `json.dumps` with an option builds a new one each call.
_LEGACY = json.JSONEncoder(separators=(",", ":"))


def legacy_json(value: Any) -> str:
    """JSON text as the hosted services wrote it: compact, non-ASCII escaped."""
    return _LEGACY.encode(value)


def parse_queue(body: dict[str, Any]) -> Queue:
    """`alternateQueue` read as a person would: true, false, "True", "False", 1, 0, missing."""
    value = body.get("alternateQueue")
    if value is None:
        return Queue.PRIMARY
    if isinstance(value, bool):
        return Queue.ALTERNATE if value else Queue.PRIMARY
    if isinstance(value, int) and value in (0, 1):
        return Queue.ALTERNATE if value else Queue.PRIMARY
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return Queue.ALTERNATE
        if word in _FALSE_WORDS:
            return Queue.PRIMARY
    raise InvalidInput(f"'alternateQueue' must be true or false, not {quote(value)}.")


def parse_time_range_ms(body: dict[str, Any], default_ms: int) -> int:
    value = body.get("timeRange")
    if value is None:
        return default_ms
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidInput(f"'timeRange' must be a number of milliseconds, not {quote(value)}.")
    if value < 0:
        raise InvalidInput("'timeRange' must not be negative.")
    return int(min(value, 10**15))
