"""What the client returns: jobs, their status history, messages and datastream frames."""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QueueStatus:
    """A job's state on one queue (primary or alternate)."""

    status: str
    seconds_until_complete: int
    updated_ms: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "QueueStatus":
        return cls(data["status"], data["seconds_until_complete"], data["updated_ms"])


@dataclass(frozen=True)
class HistoryEntry:
    """One status change of a job: when, on which queue, to what, by whom."""

    at_ms: int
    queue: str
    status: str
    seconds_until_complete: int
    source: str


@dataclass(frozen=True)
class Job:
    """A command for a site: `device`/`instance` should do `action` with the params."""

    ulid: str
    site: str
    created_ms: int
    device: str
    instance: str
    action: str
    required_params: dict[str, Any]
    optional_params: dict[str, Any]
    user_id: str
    user_name: str
    primary: QueueStatus
    alternate: QueueStatus
    history: list[HistoryEntry] | None = field(default=None, compare=False)

    @property
    def status(self) -> str:
        """The status on the primary queue."""
        return self.primary.status

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Job":
        history = data.get("history")
        return cls(
            ulid=data["ulid"],
            site=data["site"],
            created_ms=data["created_ms"],
            device=data["device"],
            instance=data["instance"],
            action=data["action"],
            required_params=data["required_params"],
            optional_params=data["optional_params"],
            user_id=data["user"]["id"],
            user_name=data["user"]["name"],
            primary=QueueStatus.from_json(data["primary"]),
            alternate=QueueStatus.from_json(data["alternate"]),
            history=None if history is None else [HistoryEntry(**entry) for entry in history],
        )


@dataclass(frozen=True)
class Message:
    """A user status message of a site."""

    site: str
    message: str
    level: str
    timestamp: float
    ulid: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Message":
        return cls(data["site"], data["message"], data["level"], data["timestamp"], data["ulid"])


@dataclass(frozen=True)
class Frame:
    """One frame of a site's stream: `id` is its number in the site's stream (None for
    a live-only event).

    Topic "job" carries a job (`job`), "message" a message (`message`), in the same
    shapes as the API's lists; "presence" says the site's software went online or
    offline (`data`: `online`, `since_ms`); any other topic is a live event, with its
    `data` as posted.
    """

    site: str
    topic: str
    data: Any
    id: int | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Frame":
        number = data.get("id")
        return cls(data["site"], data["topic"], data.get("data"), number)

    @property
    def job(self) -> Job | None:
        """The job of a "job" frame, as it is now; None for other frames."""
        return Job.from_json(self.data) if self.topic == "job" else None

    @property
    def message(self) -> Message | None:
        """The message of a "message" frame; None for other frames."""
        return Message.from_json(self.data) if self.topic == "message" else None


@dataclass(frozen=True)
class Site:
    """Whether a site's software is alive, and what waits for it and what it holds
    (`GET /api/v1/sites/{site}`); times in ms since the epoch."""

    site: str
    online: bool
    since_ms: int
    last_seen_ms: int | None
    last_seen: dict[str, int | None]  # per kind of call: poll_primary, status, message...
    unread: int
    oldest_unread_ms: int | None
    received: int
    running: int
    overdue: list[str]  # ULIDs
    abandoned: list[str]  # ULIDs
    last_message_level: str | None
    last_message_timestamp: float | None  # seconds

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Site":
        jobs, message = data["jobs"], data.get("last_message") or {}
        return cls(
            site=data["site"],
            online=data["online"],
            since_ms=data["since_ms"],
            last_seen_ms=data["last_seen_ms"],
            last_seen=dict(data["last_seen"]),
            unread=jobs["unread"],
            oldest_unread_ms=jobs["oldest_unread_ms"],
            received=jobs["received"],
            running=jobs["running"],
            overdue=list(jobs["overdue"]),
            abandoned=list(jobs["abandoned"]),
            last_message_level=message.get("level"),
            last_message_timestamp=message.get("timestamp"),
        )
