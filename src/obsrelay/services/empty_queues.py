"""The queues this process recently found with nothing to claim: an empty poll answered
from memory instead of the store.

A site's software polls thousands of times an hour, nearly always for nothing, and
when many sites (or one in a hurry) poll at once, the store's look is most of what
each poll costs. `JobService.claim_and_answer` notes here each (site, queue) where the
store had no deliverable job, and for `lifetime` seconds answers the next polls there
itself. Only a new job can end that emptiness (nothing else makes a job UNREAD), and
every process hears of each new job:

- this process's own submits, at once after their commit (`new_jobs`);
- another process's, by the bus's `new_jobs` notice; after a bus outage (`Resync`),
  everything is forgotten.

A notice that is lost, and another process on the same SQLite file without a shared
bus, cost at most `lifetime`: the hint then lapses and the store is looked at again.
The lifetime is half the long-poll's re-check (`OBSRELAY_LONGPOLL_RECHECK`), so a
waiting claim's re-check still reaches the store.

A poll whose look at the store began before a new job's notice must not then mark
the queue empty: each site has a version, raised by every new job, and a finding is
kept only if the version did not change during the look.

It touches nothing but its own memory, bounded by `max_entries`.
"""

import time
from collections.abc import Callable

from obsrelay.domain.jobs import Queue


class EmptyQueues:
    def __init__(
        self,
        lifetime: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
    ) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._max_entries = max_entries
        self._found_empty: dict[tuple[str, Queue], float] = {}
        self._versions: dict[str, int] = {}
        self._epoch = 0  # raised by `forget_all`, so that no look in progress counts

    def version(self, site: str) -> tuple[int, int]:
        """Taken before a look at the store; given back to `found_empty` after it."""
        return self._epoch, self._versions.get(site, 0)

    def found_empty(self, site: str, queue: Queue, version: tuple[int, int]) -> None:
        """The store had nothing to claim at `site` on `queue`, in a look that began at
        `version`; kept unless a new job came meanwhile."""
        if self.lifetime <= 0 or version != self.version(site):
            return
        if len(self._found_empty) >= self._max_entries:
            self._forget_lapsed()
        if len(self._found_empty) < self._max_entries:
            self._found_empty[(site, queue)] = self._clock()

    def is_empty(self, site: str, queue: Queue) -> bool:
        """Whether `site`'s `queue` was found empty within the lifetime, with no new job
        since."""
        found = self._found_empty.get((site, queue))
        return found is not None and self._clock() - found < self.lifetime

    def new_jobs(self, site: str) -> None:
        """`site` has a new job (committed, here or in another process)."""
        self._versions[site] = self._versions.get(site, 0) + 1
        for queue in Queue:
            self._found_empty.pop((site, queue), None)

    def forget_all(self) -> None:
        """Notices may have been missed (the bus was away): nothing is known empty."""
        self._epoch += 1
        self._found_empty.clear()
        self._versions.clear()

    def _forget_lapsed(self) -> None:
        now = self._clock()
        self._found_empty = {
            key: found for key, found in self._found_empty.items() if now - found < self.lifetime
        }
