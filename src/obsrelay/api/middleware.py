"""ASGI middleware: the client's address behind trusted proxies, CORS, the request body's
size and time limits, the one-line-per-request log, and the HTTP metrics."""

import asyncio
import functools
import ipaddress
import logging
import time
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from obsrelay.api.errors import error_response
from obsrelay.metrics import Metrics

access_log = logging.getLogger("obsrelay.access")


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """Makes the ASGI `client` the forwarded address when a trusted proxy sent the request.

    X-Forwarded-For is read from the right: each proxy appends the address it saw, so
    the first address that is not a trusted proxy is the client. From any other peer
    the header is ignored (a client could write anything there). Everything after this
    (rate limits, socket caps, waiting budgets, the access log) sees that address.
    """

    def __init__(self, app: ASGIApp, networks: Sequence[Network]) -> None:
        self.app = app
        self.networks = list(networks)
        # Every request asks about its peer: parsing the address each time cost a few
        # per cent of a request. Bounded, as forwarded hops are whatever a client wrote.
        self._trusted = functools.lru_cache(maxsize=1024)(self._is_trusted)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client and self._trusted(client[0]):
            forwarded = b",".join(
                value for name, value in scope["headers"] if name == b"x-forwarded-for"
            )
            hops = [hop.strip() for hop in forwarded.decode("latin-1").split(",") if hop.strip()]
            if hops:
                address = next((hop for hop in reversed(hops) if not self._trusted(hop)), hops[0])
                scope = {**scope, "client": (address[:64], 0)}
        await self.app(scope, receive, send)


class CORS(CORSMiddleware):
    """Starlette's CORS middleware, with a short way for a request that carries no Origin.

    Such a request does not come from a browser's page on another origin (it comes from
    the site software, the command line, a health check), and the whole middleware only
    adds `Vary: Origin` to its answer, by parsing the request's headers and the
    answer's: 4 µs of a request's CPU (a `newjob` took 115.5 µs in-process without them).
    Here it gets the same Vary, made directly; a request with an Origin goes through the
    whole middleware.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(name == b"origin" for name, _ in scope["headers"]):
            await super().__call__(scope, receive, send)
            return

        async def varying_on_origin(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _varying_on_origin(message.get("headers", []))
            await send(message)

        await self.app(scope, receive, varying_on_origin)


def _varying_on_origin(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` with Origin added to their Vary, in one header, as Starlette's does."""
    varies = [value for name, value in headers if name == b"vary"]
    others = [(name, value) for name, value in headers if name != b"vary"]
    return [*others, (b"vary", b", ".join([*varies, b"Origin"]))]


class BodySizeLimit:
    """Refuses request bodies over `max_bytes` with 413, and slow ones with 408.

    A declared Content-Length is checked at once; a chunked body is counted as it
    arrives, and the endpoint's read fails with 413 when it passes the limit. Each part
    of the body must arrive within `timeout` seconds (a client that sends a body
    slowly, or never, would otherwise hold its connection forever).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sentence = f"The request body is larger than the limit of {self.max_bytes} bytes."
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    response = error_response(scope["path"], 413, sentence)
                    await response(scope, receive, send)
                    return
        received = 0
        complete = False

        async def counting_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body, receive() waits for the disconnect: no deadline
                return await receive()
            try:
                async with asyncio.timeout(self.timeout):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"The request body did not arrive within {self.timeout:g} seconds.",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, sentence)
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        await self.app(scope, counting_receive, send)


class _AfterEachAnswer:
    """ASGI middleware base: calls `answered(scope, status, seconds)` once per HTTP
    request, when its handling ends (status 500 if no answer was started)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.answered(scope, status, time.perf_counter() - started)

    def answered(self, scope: Scope, status: int, seconds: float) -> None:
        raise NotImplementedError


class AccessLog(_AfterEachAnswer):
    """Logs one line per HTTP request: method, path, status, milliseconds and client."""

    def answered(self, scope: Scope, status: int, seconds: float) -> None:
        access_log.info(
            "request method=%s path=%s status=%d ms=%.1f client=%s",
            scope["method"],
            scope["path"],
            status,
            seconds * 1000,
            (scope.get("client") or ("-",))[0],
        )


# Why a request was refused, by its answer's status: one place, for the metrics.
REFUSAL_BY_STATUS = {
    400: "input",
    401: "auth",
    403: "auth",
    404: "not_found",
    408: "slow_body",
    409: "conflict",
    413: "size",
    422: "input",
    429: "rate_limit",
    503: "unavailable",
}


class HttpMetrics(_AfterEachAnswer):
    """ASGI middleware: counts each HTTP request by route template and status, times it,
    and counts refusals by reason. The route is the template (`/api/v1/sites/{site}`),
    never the path, so that made-up paths cannot grow the metrics without bound."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        super().__init__(app)
        self._metrics = metrics

    def answered(self, scope: Scope, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        self._metrics.http_request(scope["method"], route, status, seconds)
        reason = REFUSAL_BY_STATUS.get(status)
        if reason is not None:
            self._metrics.refusals.labels(reason).inc()
