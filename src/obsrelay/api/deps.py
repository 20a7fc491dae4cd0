"""What one server process runs with (`Services`, built by app.py at start), and the
FastAPI dependencies that hand it, or a part of it, to a request.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
thread, a hop that costs more than the whole of an empty poll.
"""

from dataclasses import dataclass, field

from fastapi import Request
from starlette.requests import HTTPConnection

from obsrelay.auth.access import Access
from obsrelay.bus import Bus
from obsrelay.config import Settings
from obsrelay.metrics import Metrics
from obsrelay.services.jobs import JobService
from obsrelay.services.messages import MessageService
from obsrelay.services.presence import Presence
from obsrelay.services.stream import EventLog, Hub
from obsrelay.services.waiting import JobWaiters
from obsrelay.store.database import Database


@dataclass(frozen=True)
class Services:
    """The process's settings, store, bus and services: one of each, for every request."""

    settings: Settings
    db: Database
    bus: Bus
    events: EventLog
    hub: Hub
    waiters: JobWaiters
    jobs: JobService
    messages: MessageService
    presence: Presence
    access: Access
    metrics: Metrics
    # Open stream sockets per client address (api/streaming.py keeps it).
    sockets_per_client: dict[str, int] = field(default_factory=dict)


def services_of(connection: HTTPConnection) -> Services:
    """The services, from a request or a websocket."""
    found: Services = connection.app.state.services
    return found


async def job_service(request: Request) -> JobService:
    return services_of(request).jobs


async def message_service(request: Request) -> MessageService:
    return services_of(request).messages


async def event_log(request: Request) -> EventLog:
    return services_of(request).events
