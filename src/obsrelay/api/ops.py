"""Operations endpoints: /healthz (the process is alive) and /readyz (the database answers).

A bus that is reconnecting does not make the server unready: requests still work,
and the datastream catches up from the store.
"""

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from obsrelay.api.deps import services_of

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
