"""Alerts: webhook notifications of what an operator wants to be woken for.

A site goes offline (after OBSRELAY_ALERT_OFFLINE_HOLD more) or comes back; a message
at or above a level; a job FAILED; a job overdue or abandoned. Each alert is a small
JSON document with a `text` field (Slack and Mattermost incoming webhooks take it as
it is), or the text alone for ntfy-style endpoints.

Delivery never happens on a request's path: `send` puts the alert in a bounded queue
and returns; one task posts them, with a timeout, and retries a failure with
back-off. A full queue drops the alert, and counts it. Each alert is sent by one
process only: a message or a status report by the process that stored it, a site's
change and an overdue job by whichever process records it in `alerts_sent` first
(services/presence.py).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from obsrelay.config import ALERT_EVENTS as EVENTS
from obsrelay.domain.jobs import Job, Queue
from obsrelay.domain.messages import LEVELS, Message

log = logging.getLogger("obsrelay.alerts")

_QUEUE_SIZE = 1000
_TIMEOUT_SECONDS = 5.0
_ATTEMPTS = 5
_FIRST_RETRY_SECONDS = 1.0
_MAX_TEXT = 1000


@dataclass(frozen=True)
class Alert:
    event: str
    site: str
    text: str
    details: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "obsrelay": {"event": self.event, "site": self.site, **self.details},
        }


def utc(ms: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


class Alerts:
    """This process's alerts: which are wanted, and their delivery queue.

    With no URL, nothing is wanted and nothing runs.
    """

    def __init__(
        self,
        url: str | None,
        *,
        events: frozenset[str] = frozenset(EVENTS),
        level: str = "error",
        plain_text: bool = False,
        retry_seconds: float = _FIRST_RETRY_SECONDS,
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self.url = url
        self.events = events if url else frozenset()
        self.level_rank = LEVELS.index(level)
        self.plain_text = plain_text
        self._retry_seconds = retry_seconds
        # "sent", "failed" (given up after retries) or "dropped" (the queue was full).
        self._on_outcome = on_outcome
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(_QUEUE_SIZE)
        self._sender: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._warned_full = False

    def wants(self, event: str) -> bool:
        return event in self.events

    # What happened, as alerts. Each returns at once: the sending is in the background.

    def site_offline(self, site: str, since_ms: int, last_seen_ms: int | None) -> None:
        seen = f"; its last call was at {utc(last_seen_ms)}" if last_seen_ms else ""
        self.send(
            Alert(
                "offline",
                site,
                f"Site {site} is OFFLINE since {utc(since_ms)}{seen}.",
                {"since_ms": since_ms, "last_seen_ms": last_seen_ms},
            )
        )

    def site_online(self, site: str, since_ms: int, offline_since_ms: int) -> None:
        self.send(
            Alert(
                "online",
                site,
                f"Site {site} is back online since {utc(since_ms)} "
                f"(offline since {utc(offline_since_ms)}).",
                {"since_ms": since_ms, "offline_since_ms": offline_since_ms},
            )
        )

    def messages(self, messages: list[Message]) -> None:
        if not self.wants("message"):
            return
        for message in messages:
            if LEVELS.index(message.level) >= self.level_rank:
                self.send(
                    Alert(
                        "message",
                        message.site,
                        f"{message.site} {message.level.upper()}: {_short(message.message)}",
                        {"level": message.level, "timestamp": message.timestamp},
                    )
                )

    def job_failed(self, job: Job, queue: Queue) -> None:
        if self.wants("failed"):
            self.send(self._job_alert("failed", job, queue, "FAILED"))

    def job_flagged(self, event: str, job: Job, queue: Queue) -> None:
        """`event`: "overdue" (past the site's estimate) or "abandoned" (never reported)."""
        state = job.state(queue)
        why = (
            f"is overdue: {state.status}, no report since {utc(state.updated_ms)}"
            if event == "overdue"
            else f"was received at {utc(state.updated_ms)} and never reported on"
        )
        self.send(self._job_alert(event, job, queue, why))

    def _job_alert(self, event: str, job: Job, queue: Queue, what: str) -> Alert:
        command = f"{job.device_type}/{job.device_instance} {job.action}"
        where = "" if queue is Queue.PRIMARY else " (alternate queue)"
        return Alert(
            event,
            job.site,
            f"Job {job.ulid} at {job.site} {what}{where}: {command}, from {job.user.user_name}.",
            {"ulid": job.ulid, "queue": str(queue), "status": job.state(queue).status},
        )

    def send(self, alert: Alert) -> None:
        """Queues an alert that is wanted; never waits, never raises."""
        if not self.wants(alert.event):
            return
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self._on_outcome("dropped")
            if not self._warned_full:
                log.warning("alerts: the queue is full (webhook slow or down); dropping alerts")
                self._warned_full = True

    async def start(self) -> None:
        if self.url:
            self._client = httpx.AsyncClient(timeout=_TIMEOUT_SECONDS)
            self._sender = asyncio.get_running_loop().create_task(self._send_forever())

    async def close(self) -> None:
        """Stops sending; what is still queued is dropped with the process."""
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._client is not None:
            await self._client.aclose()

    async def drain(self) -> None:
        """Waits until every queued alert was sent or given up (for tests and the CLI)."""
        await self._queue.join()

    async def _send_forever(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                self._warned_full = False
                self._on_outcome("sent" if await self.deliver(alert) else "failed")
            finally:
                self._queue.task_done()

    async def deliver(self, alert: Alert) -> bool:
        """Posts one alert, retrying with back-off; False when every attempt failed."""
        assert self.url
        client = self._client or httpx.AsyncClient(timeout=_TIMEOUT_SECONDS)
        delay = self._retry_seconds
        error = ""
        try:
            for attempt in range(_ATTEMPTS):
                try:
                    if self.plain_text:
                        headers = {"Title": f"obsrelay: {alert.event} at {alert.site}"}
                        answer = await client.post(self.url, content=alert.text, headers=headers)
                    else:
                        answer = await client.post(self.url, json=alert.payload())
                    if answer.status_code < 400:
                        return True
                    error = f"the webhook answered {answer.status_code}"
                    if answer.status_code < 500 and answer.status_code not in (408, 429):
                        break  # refused for good: retrying would not help
                except httpx.HTTPError as failure:
                    # Its name only: a webhook's URL is a secret, and messages may hold it.
                    error = type(failure).__name__
                if attempt < _ATTEMPTS - 1:
                    await asyncio.sleep(delay)
                    delay *= 2
        finally:
            if client is not self._client:
                await client.aclose()
        log.warning("alerts: could not send a %s alert for %s (%s)", alert.event, alert.site, error)
        return False
