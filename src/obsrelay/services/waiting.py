"""Long-poll: claims that wait for a site's next job, woken through the event bus.

A waiting claim is registered under its site before it looks for jobs, so a job that
arrives while it looks still wakes it. Every process hears of every new job on the
bus (`EventLog.announce` marks those notices `new_jobs`), and a waiter also looks
again every `recheck_seconds`, so a lost notification costs at most that long.
"""

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

from obsrelay.bus import Committed, Notice, Resync
from obsrelay.domain.jobs import Job, Queue
from obsrelay.services.jobs import JobService

T = TypeVar("T")


class Waiter:
    """One waiting request; `hang_up` when its client has gone (it then claims nothing)."""

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.hung_up = False
        self.queue = Queue.PRIMARY

    def hang_up(self) -> None:
        self.hung_up = True
        self.woken.set()


class JobWaiters:
    """This process's waiting claims, per site, within budgets per client and in all.

    Each waiting request holds a connection (a file descriptor) for up to 25 s, so one
    client holding many could starve everybody else: past `max_per_client` or
    `max_total`, `admit` refuses and the request is answered at once, without waiting.
    """

    def __init__(
        self,
        jobs: JobService,
        recheck_seconds: float = 1.0,
        *,
        max_per_client: int = 32,
        max_total: int = 512,
    ) -> None:
        self._jobs = jobs
        self.recheck_seconds = recheck_seconds
        self.max_per_client = max_per_client
        self.max_total = max_total
        self._waiting: dict[str, set[Waiter]] = {}
        self._per_client: dict[str, int] = {}
        self._admitted = 0
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def admit(self, client: str) -> str | None:
        """Takes a waiting slot for `client`; returns why not when there is none left
        (then nothing is taken). Give a taken slot back with `release`."""
        held = self._per_client.get(client, 0)
        if held >= self.max_per_client:
            return (
                f"This client already holds {held} waiting requests, the most one client "
                "may; answered without waiting."
            )
        if self._admitted >= self.max_total:
            return "The server holds as many waiting requests as it can; answered without waiting."
        self._per_client[client] = held + 1
        self._admitted += 1
        return None

    def release(self, client: str) -> None:
        self._admitted -= 1
        held = self._per_client[client] - 1
        if held:
            self._per_client[client] = held
        else:
            del self._per_client[client]

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    def on_notice(self, notice: Notice) -> None:
        """The bus handler: a site has a new job (or the bus came back), look again."""
        if isinstance(notice, Resync):
            self._wake_all()
        elif isinstance(notice, Committed) and notice.new_jobs:
            for waiter in self._waiting.get(notice.site, ()):
                waiter.woken.set()

    def close(self) -> None:
        """Ends every wait now (the server is stopping); later claims do not wait."""
        self._closing = True
        self._wake_all()

    def close_threadsafe(self) -> None:
        """`close` from a signal handler or another thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.close)

    @property
    def waiting(self) -> int:
        """Claims waiting now (long-polls), in this process."""
        return self._admitted

    def holding(self) -> Iterator[tuple[str, Queue]]:
        """The site and queue of each claim waiting now: a site connected at this moment."""
        for site, waiters in self._waiting.items():
            for waiter in waiters:
                yield site, waiter.queue

    def _wake_all(self) -> None:
        for waiters in self._waiting.values():
            for waiter in waiters:
                waiter.woken.set()

    @contextlib.contextmanager
    def _registered(self, site: str, waiter: Waiter) -> Iterator[None]:
        self._waiting.setdefault(site, set()).add(waiter)
        try:
            yield
        finally:
            waiters = self._waiting.get(site)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiting[site]

    async def claim(
        self,
        waiter: Waiter,
        site: str,
        queue: Queue,
        answer: Callable[[list[Job]], T],
        *,
        wait: float,
        limit: int | None = None,
        claim_id: str | None = None,
    ) -> tuple[list[Job], T]:
        """Claims at once when jobs wait; otherwise waits up to `wait` seconds for one.

        Returns the jobs and `answer(jobs)` (see JobService.claim_and_answer); no jobs
        when the wait ends, the server stops or the client hangs up.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        waiter.queue = queue
        with self._registered(site, waiter):
            while True:
                # Cleared before looking: a wake-up during the look is not lost.
                waiter.woken.clear()
                if waiter.hung_up:
                    return [], answer([])
                claimed, answered = await self._jobs.claim_and_answer(
                    site, queue, answer, limit, claim_id
                )
                remaining = deadline - loop.time()
                if claimed or remaining <= 0 or self._closing:
                    return claimed, answered
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        waiter.woken.wait(), min(remaining, self.recheck_seconds)
                    )
