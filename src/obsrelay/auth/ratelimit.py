"""Rate limits: token buckets per kind of request, per client and per site, in this process.

A client is whoever a request is counted against: a site key, a signed-in user, or
else the client's address (the forwarded one behind a trusted proxy). Each client has
its own bucket at each site, so no client can spend another's budget: a flood from
one address cannot make the real site's messages bounce. Calls made with a site's key
are held only by a ceiling `keyed_factor` times higher. Buckets live in each process:
with N processes behind a balancer a client may get up to N times the limit.
"""

import math
import time
from dataclasses import dataclass
from typing import Literal

from obsrelay.domain.errors import RateLimited

_MAX_BUCKETS = 100_000


@dataclass(frozen=True, slots=True)
class Client:
    """Who a request is counted against."""

    kind: Literal["key", "user", "address"]
    id: str


class TokenBuckets:
    """`rate` requests a second per key, in bursts of up to `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[object, tuple[float, float]] = {}

    def take(self, key: object) -> float:
        """Takes one token; returns 0 if allowed, else the seconds until one is free."""
        now = time.monotonic()
        tokens, stamp = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > _MAX_BUCKETS:
            self._forget_full(now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        """Drops buckets that have refilled: they hold nothing worth keeping."""
        for key, (tokens, stamp) in list(self._buckets.items()):
            if tokens + (now - stamp) * self.rate >= self.burst:
                del self._buckets[key]


class Limits:
    """The limits of every kind (jobs, messages, events, updates, new sites)."""

    def __init__(
        self, rates: dict[str, float], *, burst_seconds: float, keyed_factor: float
    ) -> None:
        self._plain = {
            kind: TokenBuckets(rate, max(1.0, rate * burst_seconds)) for kind, rate in rates.items()
        }
        self._keyed = {
            kind: TokenBuckets(rate * keyed_factor, max(1.0, rate * burst_seconds * keyed_factor))
            for kind, rate in rates.items()
        }

    def take(self, kind: str, client: Client, site: str) -> None:
        """Counts one request of `kind` by `client` at `site`; raises RateLimited past it."""
        buckets = (self._keyed if client.kind == "key" else self._plain).get(kind)
        if buckets is None:
            return
        wait = buckets.take((client, site))
        if wait > 0:
            raise RateLimited(
                f"Too many {kind} from this client for site {site}; slow down.",
                retry_after=max(1, math.ceil(wait)),
            )


class NewSiteBudget:
    """How many sites one client may register by calling as them: `per_day`, in a burst."""

    def __init__(self, per_day: int) -> None:
        self._buckets = TokenBuckets(per_day / 86400.0, float(per_day)) if per_day else None

    def take(self, client: Client) -> float:
        """0 when `client` may register one more site now, else the seconds to wait."""
        return math.inf if self._buckets is None else self._buckets.take(client)
