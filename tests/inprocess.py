"""The real app in this process: the same settings, store, bus and middleware as a
server process, without the process.

`InProcessApp` runs the app, lifespan and all, on an event loop of its own thread, as
a server would, and hands out httpx clients (`client()`) that reach it through
`httpx.ASGITransport`: each request runs on the app's loop, never on the test's.
Where a test needs several processes, restarts, a websocket, a client that hangs up,
or a browser, it starts a real server instead (tests/servers.py).
"""

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx

from obsrelay.api.deps import Services
from obsrelay.app import create_app
from obsrelay.config import Settings
from obsrelay.services.sites import SiteRegistry
from tests.servers import TEST_SETTINGS

T = TypeVar("T")


class InProcessApp:
    """The app on its own loop thread; `close` runs its shutdown."""

    def __init__(self, database_url: str, workdir: Path, **settings: Any) -> None:
        self.database_url = database_url
        self.settings = Settings(
            database_url=database_url,
            data_dir=str(workdir / "var"),
            **{**TEST_SETTINGS, **settings},
        )
        self.app = create_app(self.settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._stop: asyncio.Event | None = None
        self._lifespan: Future[None] = asyncio.run_coroutine_threadsafe(
            self._run_lifespan(started := asyncio.Event()), self._loop
        )
        self.run(started.wait())

    async def _run_lifespan(self, started: asyncio.Event) -> None:
        self._stop = asyncio.Event()
        async with self.app.router.lifespan_context(self.app):
            started.set()
            await self._stop.wait()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Runs `coroutine` on the app's loop, where its store and bus live."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(60)

    def register_sites(self, *names: str) -> None:
        """Registers sites, as `obsrelay sites add` does, through the app's own store: the
        row is the same, and it spares the new engine and connection that
        tests/servers.register_site makes (20 ms a site)."""

        async def register() -> None:
            services: Services = self.app.state.services
            registry = SiteRegistry(services.db)
            for name in names:
                await registry.register(name, "operator")

        self.run(register())

    def client(self, **options: Any) -> httpx.Client:
        """A sync client of the app (like `httpx.Client(base_url=server.url)`)."""
        return httpx.Client(transport=_SyncBridge(self), base_url="http://obsrelay.test", **options)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """Runs the request through httpx.ASGITransport on the app's loop, body read."""
        transport = httpx.ASGITransport(app=self.app)
        response = await transport.handle_async_request(request)
        body = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        with contextlib.suppress(Exception):
            self._lifespan.result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class _SyncBridge(httpx.BaseTransport):
    def __init__(self, app: InProcessApp) -> None:
        self._app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # the body, whole, before it crosses to the app's loop
        return self._app.run(self._app._send(request))
