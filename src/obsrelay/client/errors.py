"""The client's exceptions: each says what happened, in the server's sentence if it sent one."""


class ObsrelayError(Exception):
    """Anything that went wrong talking to an obsrelay server."""


class ServerUnavailable(ObsrelayError):
    """The server could not be reached, timed out, or answered 5xx: worth retrying later."""


class RequestRejected(ObsrelayError):
    """The server refused the request (4xx); retrying the same request will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


class InvalidRequest(RequestRejected):
    """400, 413 or 422: something in the request is wrong."""


class AuthenticationFailed(RequestRejected):
    """401: no token or key, or one the server does not accept."""


class PermissionDenied(RequestRejected):
    """403: the credentials are valid but not for this."""


class JobNotFound(RequestRejected):
    """404: no such job (at that site)."""


class Conflict(RequestRejected):
    """409: the job's state forbids the change (it is finished, or already received)."""


class RateLimited(RequestRejected):
    """429: too many requests; `retry_after` seconds until the next may pass."""

    def __init__(self, status: int, message: str, retry_after: float) -> None:
        super().__init__(status, message)
        self.retry_after = retry_after
