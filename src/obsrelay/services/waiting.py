"""Long-poll: claims that wait for a site's next job, woken through the event bus.

A waiting claim is registered under its site before it looks for jobs, so a job that
arrives while it looks still wakes it. Every process hears of every new job on the
bus (`EventLog.announce` marks those notices with "jobs"), and a waiter also looks
again every `recheck_seconds`, so a lost notification costs at most that long.
"""

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from obsrelay.domain.jobs import Job, Queue
from obsrelay.services.jobs import JobService


class Waiter:
    """One waiting request; `hang_up` when its client has gone (it then claims nothing)."""

    def __init__(self) -> None:
        self.woken = asyncio.Event()
        self.hung_up = False
        # Woken by a new job's notice (not the re-check): claim without looking first.
        self.job_announced = False

    def hang_up(self) -> None:
        self.hung_up = True
        self.woken.set()


class JobWaiters:
    """This process's waiting claims, per site."""

    def __init__(self, recheck_seconds: float = 1.0) -> None:
        self.recheck_seconds = recheck_seconds
        self._waiting: dict[str, set[Waiter]] = {}
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    def waiting(self) -> int:
        return sum(len(waiters) for waiters in self._waiting.values())

    def on_bus_message(self, message: dict[str, Any]) -> None:
        """The bus handler: a site's job changed (or the bus came back), look again."""
        if message.get("resync"):
            self._wake_all()
        elif message.get("jobs"):
            site = message.get("site")
            for waiter in self._waiting.get(site, ()) if isinstance(site, str) else ():
                waiter.job_announced = True
                waiter.woken.set()

    def close(self) -> None:
        """Ends every wait now (the server is stopping); later claims do not wait."""
        self._closing = True
        self._wake_all()

    def close_threadsafe(self) -> None:
        """`close` from a signal handler or another thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.close)

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
        jobs: JobService,
        waiter: Waiter,
        site: str,
        queue: Queue,
        *,
        wait: float,
        limit: int | None = None,
        claim_id: str | None = None,
    ) -> list[Job]:
        """Claims at once when jobs wait; otherwise waits up to `wait` seconds for one.

        Returns [] when the wait ends, the server stops or the client hangs up.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        with self._registered(site, waiter):
            while True:
                # Cleared before looking: a wake-up during the look is not lost.
                waiter.woken.clear()
                announced, waiter.job_announced = waiter.job_announced, False
                if waiter.hung_up:
                    return []
                claimed = await jobs.claim(site, queue, limit, claim_id, expect_jobs=announced)
                remaining = deadline - loop.time()
                if claimed or remaining <= 0 or self._closing:
                    return claimed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        waiter.woken.wait(), min(remaining, self.recheck_seconds)
                    )
