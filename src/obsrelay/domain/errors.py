"""Errors raised by the rules. Each carries one sentence a person can read.

The HTTP adapters map them to status codes (400, 404, 409); nothing below the API
knows about HTTP.
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
