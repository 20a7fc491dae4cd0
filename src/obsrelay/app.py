"""create_app(settings): wiring only. Builds the store, the bus, the services and the routes."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from obsrelay import __version__
from obsrelay.api import datastream, ops
from obsrelay.api.compat import jobs as compat_jobs
from obsrelay.api.compat import logs as compat_logs
from obsrelay.api.errors import ERROR_HEADER, install_error_handlers
from obsrelay.api.middleware import AccessLog, BodySizeLimit
from obsrelay.api.v1 import jobs as v1_jobs
from obsrelay.api.v1 import messages as v1_messages
from obsrelay.bus import open_bus
from obsrelay.config import Settings, load_settings
from obsrelay.services.jobs import JobService
from obsrelay.services.messages import MessageService
from obsrelay.services.stream import EventLog, Hub
from obsrelay.store.database import open_database

log = logging.getLogger("obsrelay")
_SWEEP_BATCH = 500


async def _sweep_forever(
    name: str, sweep: Callable[[int], Awaitable[int]], interval: float
) -> None:
    """Runs a bounded clean-up every `interval` seconds; a full batch goes on at once."""
    while True:
        try:
            if await sweep(_SWEEP_BATCH) >= _SWEEP_BATCH:
                continue
        except Exception:
            log.exception("%s sweep failed; retrying in %.0f s", name, interval)
        await asyncio.sleep(interval)


def app_from_environment() -> FastAPI:
    """The app with settings from the environment, for other ASGI servers.

    `uvicorn --factory obsrelay.app:app_from_environment`; `obsrelay serve` streams
    faster (see api/wsframes.py).
    """
    return create_app(load_settings())


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = open_database(settings.database_url)
        await db.upgrade()
        bus = open_bus(settings.bus_url)
        events = EventLog(db, bus)
        hub = Hub(events, datastream.render_frame)
        app.state.settings = settings
        app.state.db = db
        app.state.bus = bus
        app.state.events = events
        app.state.hub = hub
        app.state.jobs = JobService(db, events, expiry_seconds=settings.job_expiry)
        app.state.messages = MessageService(
            db, events, retention_seconds=settings.message_retention
        )
        await hub.start()
        await bus.start(hub.on_bus_message)
        sweepers = [
            asyncio.create_task(
                _sweep_forever("expiry", app.state.jobs.expire_stale, settings.sweep_interval)
            ),
            asyncio.create_task(
                _sweep_forever("retention", app.state.messages.forget_old, settings.sweep_interval)
            ),
        ]
        log.info("obsrelay %s ready on %s, bus %s", __version__, db.dialect, settings.bus_url)
        try:
            yield
        finally:
            for sweeper in sweepers:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await bus.close()
            await hub.close()
            await db.close()

    app = FastAPI(
        title="obsrelay",
        version=__version__,
        summary="Commands to robotic observatories, and their status messages back.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Routes are matched in order: the site software's polls and posts come first.
    app.include_router(compat_jobs.router)
    app.include_router(compat_logs.router)
    app.include_router(ops.router)
    app.include_router(v1_jobs.router)
    app.include_router(v1_messages.router)
    app.add_api_websocket_route(settings.datastream_path, datastream.datastream)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Outside the body limit, so that its 413 answers carry CORS headers too.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origin_list,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Site-Key"],
        expose_headers=[ERROR_HEADER],
        max_age=600,
    )
    if settings.log_requests:
        app.add_middleware(AccessLog)
    return app
