"""create_app(settings): wiring only. Builds the store, the services and the HTTP routes."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from obsrelay import __version__
from obsrelay.api import ops
from obsrelay.api.compat import jobs as compat_jobs
from obsrelay.api.errors import ERROR_HEADER, install_error_handlers
from obsrelay.api.middleware import AccessLog, BodySizeLimit
from obsrelay.api.v1 import jobs as v1_jobs
from obsrelay.config import Settings
from obsrelay.services.jobs import JobService
from obsrelay.store.database import open_database

log = logging.getLogger("obsrelay")
_SWEEP_BATCH = 500


async def _sweep_forever(jobs: JobService, interval: float) -> None:
    """Expires stale unread jobs every `interval` seconds, a bounded batch at a time."""
    while True:
        try:
            expired = await jobs.expire_stale(_SWEEP_BATCH)
            # A full batch means more may be waiting: go on without sleeping.
            if expired >= _SWEEP_BATCH:
                continue
        except Exception:
            log.exception("expiry sweep failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = open_database(settings.database_url)
        await db.upgrade()
        jobs = JobService(db, expiry_seconds=settings.job_expiry)
        app.state.db = db
        app.state.jobs = jobs
        sweeper = asyncio.create_task(_sweep_forever(jobs, settings.sweep_interval))
        log.info("obsrelay %s ready on %s", __version__, db.dialect)
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await db.close()

    app = FastAPI(
        title="obsrelay",
        version=__version__,
        summary="Commands to robotic observatories, and their status messages back.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(ops.router)
    app.include_router(compat_jobs.router)
    app.include_router(v1_jobs.router)
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
