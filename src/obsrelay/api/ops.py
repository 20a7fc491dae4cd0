"""Operations endpoints: /healthz (the process is alive) and /readyz (the database answers).

A bus that is reconnecting does not make the server unready: requests still work,
and the datastream catches up from the store.
"""

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from obsrelay.bus import Bus
from obsrelay.config import Settings
from obsrelay.store.database import Database

log = logging.getLogger("obsrelay.api")
router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The server process is alive (touches nothing)")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="The server can reach its database")
async def readyz(request: Request) -> JSONResponse:
    db: Database = request.app.state.db
    try:
        await db.ping()
    except Exception as error:
        log.warning("readiness check failed: %s", error)
        return JSONResponse(
            {"status": "unavailable", "detail": "The database does not answer."},
            status_code=503,
        )
    bus: Bus = request.app.state.bus
    settings: Settings = request.app.state.settings
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
