"""The client for people and scripts: submit and cancel jobs, read them, follow a site.

from obsrelay.client import UserClient

with UserClient("https://relay.example.org", token) as relay:
    job = relay.submit("mrc1", "camera", "camera1", "expose", {"time": 30})
    for frame in relay.watch("mrc1"):
        if frame.job:
            print(frame.job.ulid, frame.job.status)
"""

import json
import logging
import time
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from obsrelay.client import _http
from obsrelay.client.errors import AuthenticationFailed, ServerUnavailable
from obsrelay.client.models import Frame, Job, Message, Site

log = logging.getLogger("obsrelay.client")

# How long leaving a stream (Ctrl-C, a break out of `watch`) waits for the server's
# goodbye: a healthy server answers at once, and one gone quiet must not keep a person
# waiting (websockets waits 10 s by default).
STREAM_CLOSE_TIMEOUT = 1.0


class UserClient:
    """A person's (or a script's) connection to obsrelay; `token` from the sign-in, or
    `obsrelay tokens create` (None where the server lets anybody in)."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        timeout: httpx.Timeout = _http.DEFAULT_TIMEOUT,
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self._http = httpx.Client(
            base_url=self.server, headers=_http.headers(token=token), timeout=timeout
        )

    def __enter__(self) -> "UserClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        try:
            answer = self._http.request(method, path, json=body, params=params)
        except httpx.TransportError as error:
            raise _http.unavailable(error, self.server) from error
        return _http.result(answer)

    def submit(
        self,
        site: str,
        device: str,
        instance: str,
        action: str,
        required_params: dict[str, Any] | None = None,
        optional_params: dict[str, Any] | None = None,
    ) -> Job:
        """Sends a command to a site; returns the new job (UNREAD until the site claims it)."""
        body = {
            "device": device,
            "instance": instance,
            "action": action,
            "required_params": required_params or {},
            "optional_params": optional_params or {},
        }
        return Job.from_json(self._send("POST", f"/api/v1/sites/{site}/jobs", body))

    def cancel_all(self, site: str) -> Job:
        """Ends everything at `site`: its earlier unfinished jobs are cancelled, and the
        site is sent `cancel_all_commands` (device and instance "all", as the web front
        end sends it), which stops what it is doing. Returns that job."""
        return self.submit(site, "all", "all", "cancel_all_commands")

    def stop(self, site: str, device: str, instance: str) -> Job:
        """Tells one device to stop what it is doing (the `stop` action), as a job of its
        own: a job the site has received can no longer be cancelled."""
        return self.submit(site, device, instance, "stop")

    def cancel(self, ulid: str) -> Job:
        """Cancels a job the site has not received yet (Conflict once it has)."""
        return Job.from_json(self._send("POST", f"/api/v1/jobs/{ulid}/cancel"))

    def job(self, ulid: str) -> Job:
        """One job with its whole status history (`job.history`)."""
        return Job.from_json(self._send("GET", f"/api/v1/jobs/{ulid}"))

    def jobs(
        self,
        site: str,
        *,
        status: str | None = None,
        queue: Literal["primary", "alternate"] = "primary",
        newest_first: bool = True,
        limit: int = 50,
    ) -> list[Job]:
        """Up to `limit` of the site's jobs, newest first unless told otherwise."""
        found: list[Job] = []
        after: str | None = None
        while len(found) < limit:
            params: dict[str, Any] = {
                "queue": queue,
                "order": "newest" if newest_first else "oldest",
                "limit": min(1000, limit - len(found)),
            }
            if status:
                params["status"] = status
            if after:
                params["after"] = after
            page = self._send("GET", f"/api/v1/sites/{site}/jobs", params=params)
            found += [Job.from_json(job) for job in page["jobs"]]
            after = page["next_after"]
            if after is None:
                break
        return found

    def messages(self, site: str, *, since: float | None = None, limit: int = 100) -> list[Message]:
        """The site's messages dated at or after `since` (epoch seconds), oldest first;
        without `since`, the last `limit` of the past day."""
        start = since if since is not None else time.time() - 86400
        found: list[Message] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"since": start, "limit": 1000}
            if after:
                params["after"] = after
            page = self._send("GET", f"/api/v1/sites/{site}/messages", params=params)
            found += [Message.from_json(message) for message in page["messages"]]
            after = page["next_after"]
            if after is None:
                break
        return found if since is not None else found[-limit:]

    def sites(self) -> list[str]:
        return [entry["site"] for entry in self._send("GET", "/api/v1/sites")["sites"]]

    def overview(self) -> list[Site]:
        """Every site: alive or not, its jobs, its last message (in name order)."""
        return [Site.from_json(entry) for entry in self._send("GET", "/api/v1/sites")["sites"]]

    def site(self, site: str) -> Site:
        return Site.from_json(self._send("GET", f"/api/v1/sites/{site}"))

    def stream_head(self, site: str) -> int:
        """The number of the site's newest stream event."""
        head: int = self._send("GET", f"/api/v1/sites/{site}/stream")["head"]
        return head

    def watch(
        self, site: str, since: int | None = None, *, reconnect: bool = True
    ) -> Iterator[Frame]:
        """The site's stream (its jobs as they change, its messages, its live events) as
        it happens, from event `since` on (default: from now); never ends. After a drop
        it reconnects with back-off and resumes after the last frame it gave, so nothing
        is lost or repeated. With `reconnect=False` a drop raises ServerUnavailable.
        """
        position = self.stream_head(site) if since is None else since
        backoff = _http.Backoff()
        while True:
            try:
                with connect(
                    self._stream_url(site, position),
                    open_timeout=10,
                    close_timeout=STREAM_CLOSE_TIMEOUT,
                ) as socket:
                    backoff.reset()
                    for text in socket:
                        frame = Frame.from_json(json.loads(text))
                        if frame.id is not None:
                            if frame.id <= position:
                                continue
                            position = frame.id
                        yield frame
            except InvalidStatus as error:
                if error.response.status_code in (401, 403):
                    raise AuthenticationFailed(
                        error.response.status_code,
                        f"The stream of {site} refused the connection.",
                    ) from None
                problem: Exception = error
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as error:
                problem = error
            if not reconnect:
                raise ServerUnavailable(f"The stream of {site} dropped: {problem!r}")
            pause = backoff.next()
            log.info("stream of %s dropped (%r); reconnecting in %.1f s", site, problem, pause)
            time.sleep(pause)

    def _stream_url(self, site: str, since: int) -> str:
        scheme, rest = self.server.split("://", 1)
        query = {"since": str(since)}
        if self.token:
            query["token"] = self.token
        ws_scheme = "wss" if scheme == "https" else "ws"
        return f"{ws_scheme}://{rest}/api/v1/sites/{site}/stream?{urlencode(query)}"
