"""Operations endpoints: /healthz (the process is alive), /readyz (the database answers)
and /metrics (Prometheus, for the addresses OBSRELAY_METRICS_CLIENTS names).

A bus that is reconnecting does not make the server unready: requests still work,
and the datastream catches up from the store.
"""

import ipaddress
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from obsrelay.api.deps import services_of
from obsrelay.domain.errors import Forbidden
from obsrelay.metrics import CONTENT_TYPE

log = logging.getLogger("obsrelay.api")
router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The server process is alive (touches nothing)")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="The server can reach its database")
async def readyz(request: Request) -> JSONResponse:
    running = services_of(request)
    db = running.db
    try:
        await db.ping()
    except Exception as error:
        log.warning("readiness check failed: %s", error)
        return JSONResponse(
            {"status": "unavailable", "detail": "The database does not answer."},
            status_code=503,
        )
    bus, settings = running.bus, running.settings
    return JSONResponse(
        {
            "status": "ok",
            "database": db.dialect,
            "bus": "ok" if bus.healthy else "reconnecting",
            "auth": settings.auth_mode,
            "warning": "no user is checked (OBSRELAY_AUTH_MODE=none)"
            if settings.auth_mode == "none"
            else None,
        }
    )


@router.get("/metrics", summary="Prometheus metrics of this process (see docs/adr/0005)")
async def metrics(request: Request) -> Response:
    running = services_of(request)
    address = request.client.host if request.client else "-"
    if not _may_read_metrics(address, running.settings.metrics_networks):
        raise Forbidden(
            f"The metrics are not served to {address}; OBSRELAY_METRICS_CLIENTS names "
            "who may read them."
        )
    await running.metrics.refresh(running)
    return Response(running.metrics.render(), media_type=CONTENT_TYPE)


def _may_read_metrics(
    address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
