"""The client for observatory software: claim jobs, report their status, post messages.

    from obsrelay.client import SiteClient

    with SiteClient("https://relay.example.org", "mrc1", key="ork_...") as site:
        for job in site.jobs():          # long-polls; survives the server going away
            site.update(job.ulid, "STARTED", seconds_until_complete=30)
            ...
            site.complete(job.ulid)

`AsyncSiteClient` is the same for asyncio programs.
"""

import asyncio
import collections
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from obsrelay.client import _http
from obsrelay.client.errors import RateLimited, ServerUnavailable
from obsrelay.client.models import Job, Message

log = logging.getLogger("obsrelay.client")

QueueName = Literal["primary", "alternate"]
STARTED = "STARTED"
COMPLETE = "COMPLETE"
FAILED = "FAILED"
# The server holds a claim at most this long; the read timeout allows for it.
MAX_WAIT = 25.0
_SLACK = 10.0


@dataclass(frozen=True)
class _Call:
    """One request, described once for the sync and the async client."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    read_timeout: float | None = None


class _SiteCalls:
    """The site's requests and the reading of their answers, without any I/O."""

    def __init__(self, site: str, queue: QueueName) -> None:
        self.site = site
        self.queue: QueueName = queue
        self._base = f"/api/v1/sites/{site}"

    def claim(self, wait: float, limit: int | None, claim_id: str | None) -> _Call:
        body: dict[str, Any] = {"queue": self.queue, "wait": max(0.0, min(wait, MAX_WAIT))}
        if limit is not None:
            body["limit"] = limit
        if claim_id is not None:
            body["claim_id"] = claim_id
        return _Call("POST", f"{self._base}/jobs/claim", body, body["wait"] + _SLACK)

    def update(self, ulid: str, status: str, seconds_until_complete: int) -> _Call:
        body = {
            "status": status,
            "seconds_until_complete": seconds_until_complete,
            "queue": self.queue,
        }
        return _Call("POST", f"{self._base}/jobs/{ulid}/status", body)

    def post_message(self, text: str, level: str, timestamp: float | None) -> _Call:
        return _Call("POST", f"{self._base}/messages", _message(text, level, timestamp))

    def post_messages(self, batch: list[tuple[str, str, float | None]]) -> _Call:
        messages = [_message(text, level, timestamp) for text, level, timestamp in batch]
        return _Call("POST", f"{self._base}/messages/batch", {"messages": messages})


def _message(text: str, level: str, timestamp: float | None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": text, "level": level}
    if timestamp is not None:
        body["timestamp"] = timestamp
    return body


def _failure_message(job_ulid: str, reason: str) -> str:
    return f"Job {job_ulid} failed: {reason}"


def new_claim_id() -> str:
    return secrets.token_urlsafe(12)


class _ClaimLoop:
    """The state of an endless claiming loop, shared by the sync and the async client.

    A claim id is kept until a claim succeeds, so the retry of a claim whose answer
    was lost gets that claim's jobs. Pauses grow while the server is away; that it
    went away, and that it came back, is logged once each.
    """

    def __init__(self) -> None:
        self._backoff = _http.Backoff()
        self._claim_id: str | None = None
        self._away_since: float | None = None

    def claim_id(self) -> str:
        self._claim_id = self._claim_id or new_claim_id()
        return self._claim_id

    def pause_after(self, error: RateLimited | ServerUnavailable) -> float:
        """Seconds to wait before claiming again."""
        if isinstance(error, RateLimited):
            return error.retry_after
        if self._away_since is None:
            self._away_since = time.monotonic()
            log.warning("%s; retrying until it is back", error)
        return self._backoff.next()

    def delivered(self, claimed: list[Job]) -> list[Job]:
        """Notes a successful claim; returns its jobs."""
        if self._away_since is not None:
            away = time.monotonic() - self._away_since
            log.warning("The obsrelay server is back after %.0f s", away)
            self._away_since = None
        self._backoff.reset()
        self._claim_id = None
        return claimed


class _RetryWindow:
    """When an idempotent call (a status update) is tried again, for both clients."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds
        self._backoff = _http.Backoff(0.25, 5.0)

    def pause_after(self, error: RateLimited | ServerUnavailable) -> float | None:
        """The pause before the next try; None when only one last try fits."""
        pause = error.retry_after if isinstance(error, RateLimited) else self._backoff.next()
        return None if time.monotonic() + pause > self._deadline else pause


class SiteClient:
    """A site's connection to obsrelay (sync, thread-safe for separate calls).

    `key` is the site key (`obsrelay sites add-key`); `queue` which of the job's two
    queues this program serves. Status updates are retried for up to `retry_seconds`
    while the server is unreachable (they are idempotent); other calls raise
    ServerUnavailable at once.
    """

    def __init__(
        self,
        server: str,
        site: str,
        key: str | None = None,
        *,
        queue: QueueName = "primary",
        retry_seconds: float = 30.0,
        timeout: httpx.Timeout = _http.DEFAULT_TIMEOUT,
    ) -> None:
        self.server = server.rstrip("/")
        self.site = site
        self.retry_seconds = retry_seconds
        self._calls = _SiteCalls(site, queue)
        self._http = httpx.Client(
            base_url=self.server, headers=_http.headers(key=key), timeout=timeout
        )
        # Claimed but not yet handed to the caller: kept across `jobs()` loops.
        self._pending: collections.deque[Job] = collections.deque()

    def __enter__(self) -> "SiteClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call) -> Any:
        timeout = self._http.timeout
        if call.read_timeout is not None:
            timeout = httpx.Timeout(timeout.connect, read=call.read_timeout)
        try:
            answer = self._http.request(call.method, call.path, json=call.body, timeout=timeout)
        except httpx.TransportError as error:
            raise _http.unavailable(error, self.server) from error
        return _http.result(answer)

    def _send_retrying(self, call: _Call) -> Any:
        window = _RetryWindow(self.retry_seconds)
        while True:
            try:
                return self._send(call)
            except (RateLimited, ServerUnavailable) as error:
                pause = window.pause_after(error)
            if pause is None:
                return self._send(call)
            time.sleep(pause)

    def claim(
        self, wait: float = 20.0, limit: int | None = None, claim_id: str | None = None
    ) -> list[Job]:
        """Takes the site's unread jobs (they become RECEIVED), waiting up to `wait`
        seconds (at most 25) for one to come; [] when none came."""
        answer = self._send(self._calls.claim(wait, limit, claim_id))
        return [Job.from_json(job) for job in answer]

    def update(self, ulid: str, status: str, seconds_until_complete: int = -1) -> Job:
        """Reports a job's status, e.g. "EXPOSING" with the seconds it has left."""
        return Job.from_json(
            self._send_retrying(self._calls.update(ulid, status, seconds_until_complete))
        )

    def start(self, ulid: str, seconds_until_complete: int = -1) -> Job:
        return self.update(ulid, STARTED, seconds_until_complete)

    def complete(self, ulid: str) -> Job:
        return self.update(ulid, COMPLETE, 0)

    def fail(self, ulid: str, reason: str) -> Job:
        """Marks the job FAILED and tells the people watching why, as an error message."""
        job = self.update(ulid, FAILED, 0)
        self.post_message(_failure_message(ulid, reason), "error")
        return job

    def post_message(
        self, text: str, level: str = "info", timestamp: float | None = None
    ) -> Message:
        """Posts a user status message (debug, info, warning, error or critical)."""
        return Message.from_json(self._send(self._calls.post_message(text, level, timestamp)))

    def post_messages(self, batch: list[tuple[str, str, float | None]]) -> list[Message]:
        """Posts up to 100 (text, level, timestamp) messages in one request, in order."""
        answer = self._send(self._calls.post_messages(batch))
        return [Message.from_json(message) for message in answer["messages"]]

    def jobs(self, wait: float = 20.0) -> Iterator[Job]:
        """Every job for this site, one at a time, as it comes; never ends.

        Long-polls the server. While the server is away it retries with growing,
        jittered pauses and logs that once. A claim whose answer was lost is retried
        with the same claim id, so its jobs are delivered anyway, and exactly once.
        Jobs claimed but not yet yielded wait for the next loop over `jobs()`.
        """
        loop = _ClaimLoop()
        while True:
            while self._pending:
                yield self._pending.popleft()
            try:
                claimed = self.claim(wait, claim_id=loop.claim_id())
            except (RateLimited, ServerUnavailable) as error:
                time.sleep(loop.pause_after(error))
                continue
            self._pending.extend(loop.delivered(claimed))


class AsyncSiteClient:
    """`SiteClient` for asyncio programs: the same calls, awaited, the same retries."""

    def __init__(
        self,
        server: str,
        site: str,
        key: str | None = None,
        *,
        queue: QueueName = "primary",
        retry_seconds: float = 30.0,
        timeout: httpx.Timeout = _http.DEFAULT_TIMEOUT,
    ) -> None:
        self.server = server.rstrip("/")
        self.site = site
        self.retry_seconds = retry_seconds
        self._calls = _SiteCalls(site, queue)
        self._http = httpx.AsyncClient(
            base_url=self.server, headers=_http.headers(key=key), timeout=timeout
        )
        self._pending: collections.deque[Job] = collections.deque()

    async def __aenter__(self) -> "AsyncSiteClient":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call) -> Any:
        timeout = self._http.timeout
        if call.read_timeout is not None:
            timeout = httpx.Timeout(timeout.connect, read=call.read_timeout)
        try:
            answer = await self._http.request(
                call.method, call.path, json=call.body, timeout=timeout
            )
        except httpx.TransportError as error:
            raise _http.unavailable(error, self.server) from error
        return _http.result(answer)

    async def _send_retrying(self, call: _Call) -> Any:
        window = _RetryWindow(self.retry_seconds)
        while True:
            try:
                return await self._send(call)
            except (RateLimited, ServerUnavailable) as error:
                pause = window.pause_after(error)
            if pause is None:
                return await self._send(call)
            await asyncio.sleep(pause)

    async def claim(
        self, wait: float = 20.0, limit: int | None = None, claim_id: str | None = None
    ) -> list[Job]:
        answer = await self._send(self._calls.claim(wait, limit, claim_id))
        return [Job.from_json(job) for job in answer]

    async def update(self, ulid: str, status: str, seconds_until_complete: int = -1) -> Job:
        return Job.from_json(
            await self._send_retrying(self._calls.update(ulid, status, seconds_until_complete))
        )

    async def start(self, ulid: str, seconds_until_complete: int = -1) -> Job:
        return await self.update(ulid, STARTED, seconds_until_complete)

    async def complete(self, ulid: str) -> Job:
        return await self.update(ulid, COMPLETE, 0)

    async def fail(self, ulid: str, reason: str) -> Job:
        job = await self.update(ulid, FAILED, 0)
        await self.post_message(_failure_message(ulid, reason), "error")
        return job

    async def post_message(
        self, text: str, level: str = "info", timestamp: float | None = None
    ) -> Message:
        return Message.from_json(await self._send(self._calls.post_message(text, level, timestamp)))

    async def post_messages(self, batch: list[tuple[str, str, float | None]]) -> list[Message]:
        answer = await self._send(self._calls.post_messages(batch))
        return [Message.from_json(message) for message in answer["messages"]]

    async def jobs(self, wait: float = 20.0) -> AsyncIterator[Job]:
        """As `SiteClient.jobs`."""
        loop = _ClaimLoop()
        while True:
            while self._pending:
                yield self._pending.popleft()
            try:
                claimed = await self.claim(wait, claim_id=loop.claim_id())
            except (RateLimited, ServerUnavailable) as error:
                await asyncio.sleep(loop.pause_after(error))
                continue
            self._pending.extend(loop.delivered(claimed))
