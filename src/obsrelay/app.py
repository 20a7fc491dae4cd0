"""create_app(settings): wiring only. Builds the store, the bus, the services and the routes."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig

from obsrelay import __version__
from obsrelay.api import console, docs, ops
from obsrelay.api.compat import datastream
from obsrelay.api.compat import jobs as compat_jobs
from obsrelay.api.compat import logs as compat_logs
from obsrelay.api.deps import Services
from obsrelay.api.errors import ERROR_HEADER, install_error_handlers
from obsrelay.api.middleware import CORS, AccessLog, BodySizeLimit, HttpMetrics, TrustedProxies
from obsrelay.api.v1 import jobs as v1_jobs
from obsrelay.api.v1 import messages as v1_messages
from obsrelay.api.v1 import sites as v1_sites
from obsrelay.api.v1 import stream as v1_stream
from obsrelay.auth.access import Access
from obsrelay.auth.calendar import Calendar
from obsrelay.auth.local import LOCAL_AUDIENCE, LOCAL_ISSUER, LocalSigner
from obsrelay.auth.ratelimit import Limits, NewSiteBudget
from obsrelay.auth.sitekeys import SiteKeys
from obsrelay.auth.tokens import JwksKeys, StaticKeys, TokenVerifier
from obsrelay.auth.userinfo import Userinfo
from obsrelay.bus import Notice, open_bus
from obsrelay.config import Settings, alert_events, database_shown, load_settings
from obsrelay.domain.jobs import Deadlines
from obsrelay.domain.presence import Call
from obsrelay.metrics import Metrics
from obsrelay.services.alerts import Alerts
from obsrelay.services.jobs import JobService
from obsrelay.services.messages import MessageService
from obsrelay.services.presence import Presence
from obsrelay.services.sites import SiteRegistry
from obsrelay.services.stream import EventLog, Hub
from obsrelay.services.waiting import JobWaiters
from obsrelay.store.database import Database, DatabaseUnavailable, open_database
from obsrelay.store.site_changes import follow_site_changes

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
        except DatabaseUnavailable:
            pass  # the database logs its outage once
        except Exception:
            log.exception("%s sweep failed; retrying in %.0f s", name, interval)
        await asyncio.sleep(interval)


def build_access(
    settings: Settings, db: Database
) -> tuple[Access, list[Callable[[], Awaitable[None]]]]:
    """The access policy for the settings, and what to close at shutdown."""
    site_changes = follow_site_changes(db)
    closers: list[Callable[[], Awaitable[None]]] = [site_changes.close]
    verifier: TokenVerifier | None = None
    if settings.auth_mode == "local":
        signer = LocalSigner(Path(settings.data_dir))
        verifier = TokenVerifier(
            StaticKeys(signer.key_set), issuer=LOCAL_ISSUER, audience=LOCAL_AUDIENCE
        )
    elif settings.auth_mode == "oidc":
        assert settings.oidc_jwks_url and settings.oidc_issuer and settings.oidc_audience
        jwks = JwksKeys(settings.oidc_jwks_url, min_refresh_seconds=settings.oidc_refresh_seconds)
        closers.append(jwks.close)
        userinfo = None
        if settings.oidc_userinfo_url:
            userinfo = Userinfo(settings.oidc_userinfo_url, settings.oidc_roles_claim)
            closers.append(userinfo.close)
        verifier = TokenVerifier(
            jwks,
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            roles_claim=settings.oidc_roles_claim,
            users=userinfo,
        )
    calendar = Calendar(settings.calendar_url) if settings.calendar_url else None
    if calendar is not None:
        closers.append(calendar.close)
    limits = Limits(
        {
            "jobs": settings.rate_jobs,
            "messages": settings.rate_messages,
            "events": settings.rate_events,
            "updates": settings.rate_updates,
        },
        burst_seconds=settings.rate_burst_seconds,
        keyed_factor=settings.rate_keyed_factor,
    )
    access = Access(
        verifier=verifier,
        site_keys=SiteKeys(db, site_changes),
        sites=SiteRegistry(db, site_changes),
        site_keys_mode=settings.site_keys,
        public_read=settings.public_read,
        calendar=calendar,
        limits=limits,
        new_sites=NewSiteBudget(settings.new_sites_per_client),
        max_sites=settings.max_sites,
    )
    return access, closers


def add_routes(app: FastAPI, *routers: APIRouter) -> None:
    """Adds the routers' routes to the app's own list, in order.

    FastAPI 0.165's `include_router` puts a dispatcher of its own in front of each
    router's routes, which cost about a tenth of an empty poll's CPU. These routers take
    nothing at inclusion (their prefix, tags and dependencies are in each route already)
    and have no lifespan of their own, so their routes act the same either way. One
    difference: `app.dependency_overrides` does not reach them (obsrelay uses none).
    """
    for router in routers:
        if router.on_startup or router.on_shutdown:
            raise ValueError("a router with start or stop handlers needs include_router")
        app.router.routes.extend(router.routes)


# The collector's youngest generation is collected after this many more container
# objects were made than freed: above what the requests in flight hold at once (ADR 0013).
YOUNG_GENERATION_THRESHOLD = 10_000


def settle_the_collector() -> None:
    """What start-up built lives as long as the process: out of the collector's passes,
    which otherwise walk all of it and hold the loop ~50 ms. And the young objects of
    the requests in flight are not walked again and again (ADR 0013)."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)


def app_from_environment() -> FastAPI:
    """The app with settings from the environment, for other ASGI servers.

    `uvicorn --factory obsrelay.app:app_from_environment`; `obsrelay serve` streams
    faster (see api/wsframes.py).
    """
    return create_app(load_settings())


NO_FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = open_database(settings.database_url)
        await db.upgrade()
        bus = open_bus(settings.bus_url)
        metrics.count_elsewhere(
            "obsrelay_bus_reconnects", "Times the event bus reconnected.", lambda: bus.reconnects
        )
        metrics.count_elsewhere(
            "obsrelay_database_errors",
            "Transactions refused because the database did not answer.",
            lambda: db.outage.failures,
        )
        events = EventLog(db, bus)
        alerts = Alerts(
            settings.alert_webhook_url,
            events=alert_events(settings),
            level=settings.alert_level,
            plain_text=settings.alert_format == "text",
            on_outcome=lambda outcome: metrics.alerts.labels(outcome).inc(),
        )
        jobs = JobService(
            db,
            events,
            expiry_seconds=settings.job_expiry,
            metrics=metrics,
            alerts=alerts,
            # Half the long-poll's re-check, which then still reaches the store.
            empty_hint_seconds=settings.longpoll_recheck / 2,
        )
        access, closers = build_access(settings, db)
        waiters = JobWaiters(
            jobs,
            settings.longpoll_recheck,
            max_per_client=settings.max_waiting_per_client,
            # "0": half the open-file limit, read at start (`obsrelay serve` raised it).
            max_total=settings.max_waiting or _half_the_open_file_limit(),
        )
        presence = Presence(
            db,
            events,
            offline_after=settings.site_offline_after,
            deadlines=Deadlines(
                overdue_grace_ms=int(settings.job_overdue_grace * 1000),
                abandoned_after_ms=int(settings.job_abandoned_after * 1000),
            ),
            still_connected=lambda: ((site, Call.poll(queue)) for site, queue in waiters.holding()),
            alerts=alerts,
            alert_offline_hold=settings.alert_offline_hold,
        )
        services = Services(
            settings=settings,
            db=db,
            bus=bus,
            events=events,
            hub=Hub(events, batch_seconds=settings.stream_batch_ms / 1000),
            waiters=waiters,
            jobs=jobs,
            messages=MessageService(
                db,
                events,
                retention_seconds=settings.message_retention,
                metrics=metrics,
                alerts=alerts,
            ),
            presence=presence,
            access=access,
            metrics=metrics,
        )
        app.state.services = services
        if settings.auth_mode == "none":
            log.warning(
                "OBSRELAY_AUTH_MODE=none: no user is checked and anyone may command any "
                "site. For local experiments only."
            )
        await services.hub.start()
        await services.waiters.start()

        def on_notice(notice: Notice) -> None:
            services.jobs.on_notice(notice)  # first: the waiters it wakes claim at once
            services.hub.on_notice(notice)
            services.waiters.on_notice(notice)

        await bus.start(on_notice)
        await alerts.start()
        await presence.start()
        sweepers = [
            asyncio.create_task(
                _sweep_forever("expiry", jobs.expire_stale, settings.sweep_interval)
            ),
            asyncio.create_task(
                _sweep_forever("retention", services.messages.forget_old, settings.sweep_interval)
            ),
        ]
        log.info(
            "obsrelay %s ready: database %s, bus %s, data directory %s",
            __version__,
            database_shown(settings.database_url),
            settings.bus_url,
            settings.data_dir,
        )
        settle_the_collector()
        try:
            yield
        finally:
            for sweeper in sweepers:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            services.waiters.close()
            await presence.close()
            await alerts.close()
            await bus.close()
            await services.hub.close()
            for close in closers:
                await close()
            await db.close()

    app = FastAPI(
        title="obsrelay",
        version=__version__,
        summary="Commands to robotic observatories, and their status messages back.",
        lifespan=lifespan,
        # Served by api/docs.py from the package, not from a CDN.
        docs_url=None,
        redoc_url=None,
        # FastAPI's own OpenTelemetry is off, whatever the environment says: obsrelay
        # reports through /metrics and its logs, which keep tokens out (ADR 0011).
        telemetry=NO_FASTAPI_TELEMETRY,
    )
    install_error_handlers(app)
    # Routes are matched in order: the site software's polls and posts come first.
    add_routes(
        app,
        compat_jobs.router,
        compat_logs.router,
        ops.router,
        v1_jobs.router,
        v1_jobs.by_ulid_router,
        v1_messages.router,
        v1_sites.router,
        v1_stream.router,
    )
    app.add_api_websocket_route(settings.datastream_path, datastream.datastream)
    add_routes(app, console.router)
    app.mount("/console", console.static_files(), name="console")
    add_routes(app, docs.router)
    app.mount(docs.ASSETS_PATH, docs.static_files(), name="docs-assets")
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, timeout=settings.request_timeout
    )
    # Outside the body limit, so that its 413 answers carry CORS headers too.
    app.add_middleware(
        CORS,
        allow_origins=settings.cors_origin_list,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Site-Key"],
        expose_headers=[ERROR_HEADER],
        max_age=600,
    )
    if settings.log_requests:
        app.add_middleware(AccessLog)
    app.add_middleware(HttpMetrics, metrics=metrics)
    # Outermost: everything inside sees the client's own address.
    app.add_middleware(TrustedProxies, networks=settings.trusted_proxy_networks)
    return app


def _half_the_open_file_limit() -> int:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1, (soft if soft != resource.RLIM_INFINITY else 1 << 20) // 2)
