"""Claims over HTTP with `wait`: held until a job comes, and let go if the client leaves.

Shared by the compatible getnewjobs and the native claim endpoint. A request that would
wait past the waiting budgets (services/waiting.py) is answered at once instead, with
the jobs there are and the reason in `X-Obsrelay-Warning`.
"""

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

from fastapi import Request
from starlette.types import Receive

from obsrelay.api.deps import services_of
from obsrelay.api.errors import header_safe
from obsrelay.domain.jobs import MAX_WAIT_SECONDS, Job, Queue, parse_wait
from obsrelay.services.waiting import Waiter

T = TypeVar("T")
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
            f"The longest wait is {MAX_WAIT_SECONDS:g} seconds; waited at most that long."
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
    answer: Callable[[list[Job]], T],
    headers: dict[str, str],
    *,
    wait: float,
    limit: int | None = None,
    claim_id: str | None = None,
) -> T:
    """Claims `site`'s jobs, waiting up to `wait` seconds for one when there are none.

    Returns `answer(jobs)`, made before the claim commits. Adds to `headers` when the
    request could not wait.
    """
    running = services_of(request)
    jobs, waiters = running.jobs, running.waiters
    client = request.client.host if request.client else "-"
    refusal = waiters.admit(client) if wait > 0 else None
    if wait <= 0 or refusal is not None:
        if refusal is not None:
            headers.update({WAIT_HEADER: "0", WARNING_HEADER: header_safe(refusal)})
        _, answered = await jobs.claim_and_answer(site, queue, answer, limit, claim_id)
        return answered
    waiter = Waiter()
    watcher = asyncio.create_task(_notice_hang_up(request.receive, waiter))
    try:
        _, answered = await waiters.claim(
            waiter, site, queue, answer, wait=wait, limit=limit, claim_id=claim_id
        )
        return answered
    finally:
        waiters.release(client)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
