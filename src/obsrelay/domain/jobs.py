"""Jobs: their shape, their states on the two queues and the rules for changing them.

A job is a command from a person at the web UI to the software at one observatory
site. It is read through two independent queues (primary and alternate); each queue
has its own status, and changes it as the table in `lifecycle` allows.
Pure: no I/O, no clock; callers pass the time in.
"""

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from obsrelay.domain.errors import Conflict, InvalidInput
from obsrelay.domain.lifecycle import (
    CANCELLED,
    COMPLETE,
    UNREAD,
    Cause,
    State,
    is_final,
    may_change,
    state_of,
)
from obsrelay.domain.values import check_json, check_string, quote

# Names a site may report that mean one of ours.
_STATUS_ALIASES = {"COMPLETED": COMPLETE, "CANCELED": CANCELLED}

CANCEL_ALL_ACTION = "cancel_all_commands"
UNKNOWN_SECONDS = -1
MAX_SECONDS = 10**9
MAX_STATUS_LENGTH = 64
MAX_NAME_LENGTH = 256
MAX_SITE_LENGTH = 64
_SITE_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
_STATUS_PATTERN = re.compile(r"[A-Z0-9_ .:/-]+")
# 26 characters of Crockford's base 32; the first at most 7 (128 bits).
_ULID_PATTERN = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
MAX_WAIT_SECONDS = 25.0


class Queue(StrEnum):
    """The two independent read queues over the same jobs."""

    PRIMARY = "primary"
    ALTERNATE = "alternate"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is acting: a user of the web UI or a script."""

    user_id: str
    user_name: str
    roles: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(frozen=True, slots=True)
class QueueState:
    """A job's state on one queue."""

    status: str
    seconds_until_complete: int
    updated_ms: int

    @property
    def is_final(self) -> bool:
        return is_final(self.status)


class Flag(StrEnum):
    """Why a job that the site has needs a person's eye. A flag only shows: a flagged job
    is never delivered again by itself, since an exposure, a slew or a roof command
    must not run twice."""

    OVERDUE = "overdue"  # the site's own estimate, and a grace period, passed without news
    ABANDONED = "abandoned"  # received, and never reported on


@dataclass(frozen=True, slots=True)
class Deadlines:
    """When a job the site holds becomes overdue or abandoned (the operator's settings)."""

    overdue_grace_ms: int
    abandoned_after_ms: int

    def flag(self, state: QueueState, now_ms: int) -> Flag | None:
        """The flag of a queue's state at `now_ms`, or None."""
        silent_ms = now_ms - state.updated_ms
        current = state_of(state.status)
        if current is State.RECEIVED:
            return Flag.ABANDONED if silent_ms > self.abandoned_after_ms else None
        if current is State.RUNNING and state.seconds_until_complete >= 0:
            promised_ms = state.seconds_until_complete * 1000 + self.overdue_grace_ms
            return Flag.OVERDUE if silent_ms > promised_ms else None
        return None


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job with its state on both queues."""

    ulid: str
    site: str
    created_ms: int
    device_type: str
    device_instance: str
    action: str
    required_params: dict[str, Any]
    optional_params: dict[str, Any]
    user: Identity
    primary: QueueState
    alternate: QueueState

    def state(self, queue: Queue) -> QueueState:
        return self.primary if queue is Queue.PRIMARY else self.alternate

    def with_state(self, queue: Queue, state: QueueState) -> "Job":
        """This job with `queue` in `state`."""
        # Made field by field: every status a site reports makes one, and
        # dataclasses.replace, which looks up the fields at each call, costs three times
        # as much (a tenth of the service's own time in a drain of the job queue).
        primary = state if queue is Queue.PRIMARY else self.primary
        alternate = self.alternate if queue is Queue.PRIMARY else state
        return Job(
            ulid=self.ulid,
            site=self.site,
            created_ms=self.created_ms,
            device_type=self.device_type,
            device_instance=self.device_instance,
            action=self.action,
            required_params=self.required_params,
            optional_params=self.optional_params,
            user=self.user,
            primary=primary,
            alternate=alternate,
        )

    def to_data(self) -> dict[str, Any]:
        """The job as plain data: obsrelay's own shape, which the native API serves, the
        stream stores, and the compatible API translates (api/compat/wire.py)."""
        return {
            "ulid": self.ulid,
            "site": self.site,
            "created_ms": self.created_ms,
            "device": self.device_type,
            "instance": self.device_instance,
            "action": self.action,
            "required_params": self.required_params,
            "optional_params": self.optional_params,
            "user": {
                "id": self.user.user_id,
                "name": self.user.user_name,
                "roles": list(self.user.roles),
            },
            "primary": _state_data(self.primary),
            "alternate": _state_data(self.alternate),
        }


def _state_data(state: QueueState) -> dict[str, Any]:
    return {
        "status": state.status,
        "seconds_until_complete": state.seconds_until_complete,
        "updated_ms": state.updated_ms,
    }


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated request for a new job."""

    site: str
    device_type: str
    device_instance: str
    action: str
    required_params: dict[str, Any]
    optional_params: dict[str, Any]
    user: Identity

    @property
    def is_cancel_all(self) -> bool:
        return self.action == CANCEL_ALL_ACTION


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of one queue's status, as recorded forever in the job's history."""

    at_ms: int
    queue: Queue
    status: str
    seconds_until_complete: int
    source: str


def creation_history(job: Job) -> list[HistoryEntry]:
    """The first entries of every job's history: UNREAD on both queues when it was made.

    They follow from the job itself, so they are not stored as history rows.
    """
    source = f"user:{job.user.user_id}"
    return [HistoryEntry(job.created_ms, queue, UNREAD, UNKNOWN_SECONDS, source) for queue in Queue]


def validate_site(value: object, field: str = "site") -> str:
    """A site name: 1-64 letters, digits, '-', '_' or '.'."""
    if not isinstance(value, str):
        raise InvalidInput(f"'{field}' must be a string, not {_type_name(value)}.")
    if not value:
        raise InvalidInput(f"'{field}' must not be empty.")
    if len(value) > MAX_SITE_LENGTH:
        raise InvalidInput(f"'{field}' must be at most {MAX_SITE_LENGTH} characters long.")
    if not _SITE_PATTERN.fullmatch(value):
        raise InvalidInput(
            f"'{field}' may hold only letters, digits, '-', '_' and '.', not {quote(value)}."
        )
    return value


def validate_name(value: object, field: str) -> str:
    """A short free-text name (device, instance, action, user): a non-empty string."""
    if not isinstance(value, str):
        raise InvalidInput(f"'{field}' must be a string, not {_type_name(value)}.")
    if not value.strip():
        raise InvalidInput(f"'{field}' must not be empty.")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInput(f"'{field}' must be at most {MAX_NAME_LENGTH} characters long.")
    return check_string(value, field)


def validate_ulid(value: object, field: str = "ulid") -> str:
    """A job's ULID as the server made it (upper case; lower case is accepted)."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"'{field}' must be a non-empty string.")
    ulid = value.upper()
    if not _ULID_PATTERN.fullmatch(ulid):
        raise InvalidInput(f"'{field}' must be a 26-character ULID, not {quote(value)}.")
    return ulid


def parse_wait(value: object) -> tuple[float, bool]:
    """A long-poll's `wait` in seconds, clamped to MAX_WAIT_SECONDS; says if it was clamped."""
    if isinstance(value, str):
        text = value
        try:
            value = float(text)
        except ValueError:
            raise InvalidInput(f"'wait' must be a number of seconds, not {quote(text)}.") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"'wait' must be a number of seconds, not {_type_name(value)}.")
    if not value >= 0 or value == float("inf"):
        raise InvalidInput("'wait' must be a number of seconds from 0 up.")
    return min(float(value), MAX_WAIT_SECONDS), value > MAX_WAIT_SECONDS


def validate_params(value: object, field: str) -> dict[str, Any]:
    """Job parameters: a JSON object, kept exactly as sent (within the value rules)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"'{field}' must be a JSON object, not {_type_name(value)}.")
    check_json(value, field)
    return value


def validate_roles(value: object, field: str = "user_roles") -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(role, str) for role in value):
        raise InvalidInput(f"'{field}' must be a list of strings.")
    return tuple(check_string(role, field) for role in value)


def normalize_status(value: object) -> str:
    """A status a site reports: free text, upper-cased; COMPLETED means COMPLETE.

    UNREAD cannot be reported: it would make a delivered job deliverable again.
    """
    status = status_name(value, "newStatus")
    if status == UNREAD:
        raise InvalidInput("A job cannot be set back to UNREAD: it was delivered already.")
    return status


def status_name(value: object, field: str = "status") -> str:
    """A status as written anywhere (a report, a filter): upper-cased, aliases resolved."""
    if not isinstance(value, str):
        raise InvalidInput(f"'{field}' must be a string, not {_type_name(value)}.")
    status = value.strip().upper()
    status = _STATUS_ALIASES.get(status, status)
    if not status:
        raise InvalidInput("The new status must not be empty.")
    if len(status) > MAX_STATUS_LENGTH:
        raise InvalidInput(f"A status must be at most {MAX_STATUS_LENGTH} characters long.")
    if not _STATUS_PATTERN.fullmatch(status):
        raise InvalidInput(
            f"A status may hold only letters, digits, spaces and _ . : / -, not {quote(value)}."
        )
    return status


def normalize_seconds(value: object) -> int:
    """`secondsUntilComplete`: an int, -1 when unknown; missing or empty means -1."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return UNKNOWN_SECONDS
    if isinstance(value, bool):
        raise InvalidInput("'secondsUntilComplete' must be a number of seconds, not a boolean.")
    number: float
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InvalidInput(
                f"'secondsUntilComplete' must be a number of seconds, not {quote(value)}."
            ) from None
    else:
        raise InvalidInput(
            f"'secondsUntilComplete' must be a number of seconds, not {_type_name(value)}."
        )
    if not math.isfinite(number):
        raise InvalidInput("'secondsUntilComplete' must be a finite number of seconds.")
    if number > MAX_SECONDS:
        raise InvalidInput(f"'secondsUntilComplete' must be at most {MAX_SECONDS} seconds.")
    return max(int(number), UNKNOWN_SECONDS)


def queues_to_cancel(job: Job) -> list[Queue]:
    """The queues on which cancelling `job` sets CANCELLED (those still UNREAD).

    A job that a site has received and not finished may be running: cancelling it
    silently would leave the telescope doing it, so that is refused. Finished queues
    are left as they are; a job already cancelled gives an empty list (cancelling twice
    is harmless).
    """
    unread = [
        queue
        for queue in Queue
        if not job.state(queue).is_final
        and may_change(job.ulid, queue, job.state(queue).status, Cause.CANCEL, CANCELLED)
    ]
    if not unread and CANCELLED not in (job.primary.status, job.alternate.status):
        raise Conflict(f"Job {job.ulid} has already finished ({job.primary.status}).")
    return unread


def _type_name(value: object) -> str:
    names = {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)
