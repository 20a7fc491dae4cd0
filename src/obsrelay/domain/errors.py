"""Errors raised by the rules and the access policy. Each carries one sentence a person reads.

They are plain types: the HTTP adapters map each to its status code in one table
(api/errors.py); nothing below the API knows about HTTP.
"""


class ObsrelayError(Exception):
    """A request that the rules refuse. `message` is a sentence for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ObsrelayError):
    """The request names something malformed: a wrong type, a missing key, a bad value."""


class NotFound(ObsrelayError):
    """The request names something that does not exist."""


class Conflict(ObsrelayError):
    """The request is well formed but the current state does not allow it."""


class Unauthorized(ObsrelayError):
    """The credentials are missing or wrong, or somebody else holds the site right now."""


class Forbidden(ObsrelayError):
    """The credentials are good, but for something else (another site's key)."""


class RateLimited(ObsrelayError):
    """The client has used up its budget; it may try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ObsrelayError):
    """Something the answer depends on (database, calendar, key set) is not answering."""
