"""FastAPI dependencies shared by the adapters: the services a request works with.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
thread, a hop that costs more than the whole of an empty poll.
"""

from fastapi import Request

from obsrelay.services.jobs import JobService


async def job_service(request: Request) -> JobService:
    service: JobService = request.app.state.jobs
    return service
