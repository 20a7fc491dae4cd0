"""Claims over HTTP with `wait`: held until a job comes, and let go if the client leaves.

Shared by the compatible getnewjobs and the native claim endpoint.
"""

import asyncio
import contextlib

from fastapi import Request
from starlette.types import Receive

from obsrelay.domain.jobs import MAX_WAIT_SECONDS, Job, Queue, parse_wait
from obsrelay.services.jobs import JobService
from obsrelay.services.waiting import JobWaiters, Waiter

WAIT_HEADER = "X-Obsrelay-Wait"
WARNING_HEADER = "X-Obsrelay-Warning"


def wait_and_headers(value: object) -> tuple[float, dict[str, str]]:
    """The wait to apply for a request's `wait`, and the headers that tell the client."""
    if value is None:
        return 0.0, {}
    seconds, clamped = parse_wait(value)
    headers = {WAIT_HEADER: f"{seconds:g}"}
    if clamped:
        headers[WARNING_HEADER] = (
            f"wait {value} is longer than the longest wait, {MAX_WAIT_SECONDS:g} seconds; "
            f"waited at most {MAX_WAIT_SECONDS:g}."
        )
    return seconds, headers


async def _notice_hang_up(receive: Receive, waiter: Waiter) -> None:
    # The body has been read: the next message the server gives is the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass
    waiter.hang_up()


async def claim(
    request: Request,
    site: str,
    queue: Queue,
    *,
    wait: float,
    limit: int | None = None,
    claim_id: str | None = None,
) -> list[Job]:
    """Claims `site`'s jobs, waiting up to `wait` seconds for one when there are none."""
    jobs: JobService = request.app.state.jobs
    if wait <= 0:
        return await jobs.claim(site, queue, limit, claim_id)
    waiters: JobWaiters = request.app.state.waiters
    waiter = Waiter()
    watcher = asyncio.create_task(_notice_hang_up(request.receive, waiter))
    try:
        return await waiters.claim(
            jobs, waiter, site, queue, wait=wait, limit=limit, claim_id=claim_id
        )
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
