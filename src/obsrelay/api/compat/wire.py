"""The hosted jobs service's shapes: jobs as dicts with its key names, and its loose inputs."""

from typing import Any

from obsrelay.domain.errors import InvalidInput
from obsrelay.domain.jobs import Job, Queue, status_id

_TRUE_WORDS = {"true", "1", "yes", "y", "on"}
_FALSE_WORDS = {"false", "0", "no", "n", "off", ""}


def job_to_wire(job: Job) -> dict[str, Any]:
    """A job with every key the site software and browser index (CONTRACT section 2).

    `statusId` and `secondsUntilComplete` are the primary queue's; the alternate
    queue's state is in `alternateStatusId` and `alternateSecondsUntilComplete`.
    """
    return {
        "site": job.site,
        "ulid": job.ulid,
        "statusId": status_id(job, Queue.PRIMARY),
        "timestamp_ms": job.created_ms,
        "deviceType": job.device_type,
        "deviceInstance": job.device_instance,
        "action": job.action,
        "required_params": job.required_params,
        "optional_params": job.optional_params,
        "user_name": job.user.user_name,
        "user_id": job.user.user_id,
        "user_roles": list(job.user.roles),
        "secondsUntilComplete": job.primary.seconds_until_complete,
        "alternateStatusId": status_id(job, Queue.ALTERNATE),
        "alternateSecondsUntilComplete": job.alternate.seconds_until_complete,
    }


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
    raise InvalidInput(f"'alternateQueue' must be true or false, not {value!r}.")


def parse_ulid(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput("'ulid' must be a non-empty string.")
    return value


def parse_time_range_ms(body: dict[str, Any], default_ms: int) -> int:
    value = body.get("timeRange")
    if value is None:
        return default_ms
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidInput(f"'timeRange' must be a number of milliseconds, not {value!r}.")
    if value < 0:
        raise InvalidInput("'timeRange' must not be negative.")
    return int(min(value, 10**15))
