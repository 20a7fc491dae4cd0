"""uvicorn's HTTP protocol with a deadline for a request's headers.

uvicorn starts no timer while a request's headers arrive, so a client that opens
connections and sends its headers a byte at a time, or never finishes them
(slowloris), holds each connection, and a file descriptor, forever. Here a request's
headers must be complete within the deadline from the connection's start (or the
request's first byte, on a kept-alive connection); otherwise the server answers 408
and closes the connection. The body's deadline is api/middleware.py's BodySizeLimit.
`obsrelay serve` runs uvicorn with this protocol.
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: 47\r\n\r\n"
    b"The request headers did not arrive in due time."
)


class GuardedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a deadline for each request's headers."""

    header_timeout = 10.0
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()


def guarded_protocol(header_timeout: float) -> type[GuardedHttpProtocol]:
    """The protocol class with `header_timeout` seconds for a request's headers."""
    attributes: dict[str, Any] = {"header_timeout": header_timeout}
    return type("GuardedHttpProtocolWithTimeout", (GuardedHttpProtocol,), attributes)
