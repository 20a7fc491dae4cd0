"""What every client shares: headers, turning answers into results or exceptions, back-off."""

import random
from typing import Any

import httpx

from obsrelay import __version__
from obsrelay.client.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    JobNotFound,
    PermissionDenied,
    RateLimited,
    RequestRejected,
    ServerUnavailable,
)

USER_AGENT = f"obsrelay-client/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_REJECTIONS: dict[int, type[RequestRejected]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: JobNotFound,
    409: Conflict,
    413: InvalidRequest,
    422: InvalidRequest,
}


def headers(token: str | None = None, key: str | None = None) -> dict[str, str]:
    found = {"User-Agent": USER_AGENT}
    if token:
        found["Authorization"] = f"Bearer {token}"
    if key:
        found["X-Site-Key"] = key
    return found


def _sentence(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    if isinstance(body, str):
        return body
    return answer.headers.get("x-obsrelay-error") or answer.reason_phrase or "no reason given"


def result(answer: httpx.Response) -> Any:
    """The answer's JSON, or the exception that says why there is none."""
    if answer.is_success:
        return answer.json()
    message = _sentence(answer)
    if answer.status_code >= 500:
        raise ServerUnavailable(f"The server answered {answer.status_code}: {message}")
    if answer.status_code == 429:
        try:
            retry_after = float(answer.headers.get("retry-after", "1"))
        except ValueError:
            retry_after = 1.0
        raise RateLimited(429, message, retry_after)
    raise _REJECTIONS.get(answer.status_code, RequestRejected)(answer.status_code, message)


def unavailable(error: httpx.TransportError, server: str) -> ServerUnavailable:
    return ServerUnavailable(f"Cannot reach the obsrelay server at {server}: {error!r}")


class Backoff:
    """Waits that grow from `first` to `most` seconds, each a random share of its step
    ("full jitter"), so that many clients coming back at once do not arrive together."""

    def __init__(self, first: float = 0.5, most: float = 30.0) -> None:
        self.first = first
        self.most = most
        self.failures = 0

    def next(self) -> float:
        step = min(self.most, self.first * 2**self.failures)
        self.failures += 1
        return random.uniform(step / 2, step)

    def reset(self) -> None:
        self.failures = 0
