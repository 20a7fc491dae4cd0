"""The native API's request and response bodies."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from obsrelay.api.compat.datastream import LEGACY_TOPICS
from obsrelay.domain.jobs import (
    MAX_NAME_LENGTH,
    MAX_SECONDS,
    MAX_STATUS_LENGTH,
    MAX_WAIT_SECONDS,
    HistoryEntry,
    Job,
)
from obsrelay.domain.messages import LEVELS, MAX_MESSAGE_BYTES, Message
from obsrelay.services.stream import OWN_TOPICS

QueueName = Literal["primary", "alternate"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitJobIn(_Strict):
    device: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, examples=["camera"])
    instance: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, examples=["camera1"])
    action: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, examples=["expose"])
    required_params: dict[str, Any] = Field(default_factory=dict, examples=[{"time": 30}])
    optional_params: dict[str, Any] = Field(default_factory=dict, examples=[{"filter": "R"}])


class ClaimIn(_Strict):
    queue: QueueName = "primary"
    limit: int | None = Field(None, ge=1, le=1000, description="At most this many jobs.")
    wait: float | None = Field(
        None,
        ge=0,
        strict=True,
        allow_inf_nan=False,
        description=f"Long-poll: with no job waiting, hold the request up to this many "
        f"seconds until one comes (at most {MAX_WAIT_SECONDS:g}; more is clamped).",
        examples=[20],
    )
    claim_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="A new random id per claim; a retry of a claim whose answer was lost "
        "sends the same id again and gets the same jobs.",
    )


class StatusIn(_Strict):
    status: str = Field(
        min_length=1, max_length=MAX_STATUS_LENGTH, examples=["EXPOSING", "COMPLETE"]
    )
    seconds_until_complete: int = Field(-1, ge=-1, le=MAX_SECONDS)
    queue: QueueName = "primary"


class QueueStateOut(BaseModel):
    status: str
    seconds_until_complete: int
    updated_ms: int


class UserOut(BaseModel):
    id: str
    name: str
    roles: list[str]


class JobOut(BaseModel):
    ulid: str
    site: str
    created_ms: int
    device: str
    instance: str
    action: str
    required_params: dict[str, Any]
    optional_params: dict[str, Any]
    user: UserOut
    primary: QueueStateOut
    alternate: QueueStateOut

    @classmethod
    def of(cls, job: Job) -> "JobOut":
        return cls.model_validate(job.to_data())


class HistoryOut(BaseModel):
    at_ms: int
    queue: QueueName
    status: str
    seconds_until_complete: int
    source: str

    @classmethod
    def of(cls, entry: HistoryEntry) -> "HistoryOut":
        return cls(
            at_ms=entry.at_ms,
            queue=entry.queue.value,
            status=entry.status,
            seconds_until_complete=entry.seconds_until_complete,
            source=entry.source,
        )


class JobDetailOut(JobOut):
    history: list[HistoryOut]

    @classmethod
    def with_history(cls, job: Job, history: list[HistoryEntry]) -> "JobDetailOut":
        return cls.model_validate(
            {**job.to_data(), "history": [HistoryOut.of(entry) for entry in history]}
        )


class JobPageOut(BaseModel):
    jobs: list[JobOut]
    next_after: str | None = Field(
        description="Pass as `after` for the next page; null at the end."
    )


class ErrorOut(BaseModel):
    detail: str = Field(description="A sentence that says what is wrong.")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Bad input"},
    404: {"model": ErrorOut, "description": "No such job"},
    409: {"model": ErrorOut, "description": "The job's state forbids this"},
    413: {"model": ErrorOut, "description": "Body too large"},
    422: {"model": ErrorOut, "description": "Body or parameters malformed"},
}


class MessageIn(_Strict):
    message: str = Field(max_length=MAX_MESSAGE_BYTES, examples=["Slewing to M31"])
    level: str = Field("info", description=f"One of {', '.join(LEVELS)} (or warn).")
    timestamp: float | None = Field(None, description="Epoch seconds; default now.")


MAX_BATCH = 100


class MessageBatchIn(_Strict):
    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_BATCH)


class MessageOut(BaseModel):
    ulid: str
    site: str
    message: str
    level: str
    timestamp: float

    @classmethod
    def of(cls, message: Message) -> "MessageOut":
        return cls.model_validate(message.to_data())


class MessageBatchOut(BaseModel):
    messages: list[MessageOut]


class MessagePageOut(BaseModel):
    messages: list[MessageOut]
    next_after: str | None


class EventIn(_Strict):
    topic: str = Field(
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9_.-]+$",
        examples=["sitestatus", "imagedata", "phase_status"],
    )
    data: Any = Field(description="Any JSON value; delivered as the frame's `data`.")

    @field_validator("topic")
    @classmethod
    def _not_ours(cls, topic: str) -> str:
        if topic in OWN_TOPICS or topic in LEGACY_TOPICS.values():
            raise ValueError(f"'{topic}' is obsrelay's own topic; post jobs or messages instead")
        return topic
