"""FastAPI dependencies shared by the adapters: the services a request works with.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
thread, a hop that costs more than the whole of an empty poll.
"""

from fastapi import Request

from obsrelay.services.jobs import JobService
from obsrelay.services.messages import MessageService
from obsrelay.services.stream import EventLog


async def job_service(request: Request) -> JobService:
    service: JobService = request.app.state.jobs
    return service


async def message_service(request: Request) -> MessageService:
    service: MessageService = request.app.state.messages
    return service


async def event_log(request: Request) -> EventLog:
    events: EventLog = request.app.state.events
    return events
