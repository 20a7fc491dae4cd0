"""The web console: its page at `/`, its static files, and what it needs to know.

The files are plain HTML, CSS and JavaScript modules in `obsrelay/web`, served as they
are: no build step, nothing fetched from elsewhere at run time.
"""

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.staticfiles import StaticFiles

from obsrelay import __version__
from obsrelay.api.deps import services_of
from obsrelay.api.permissions import user
from obsrelay.api.v1.models import ERRORS, UserOut
from obsrelay.domain.jobs import Identity

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# The page changes with each release: the browser asks again rather than trust a copy.
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["console"])


def static_files() -> StaticFiles:
    return StaticFiles(directory=WEB_DIR)


@router.get("/", include_in_schema=False)
async def console_page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", headers=_NO_CACHE)


class OidcLogin(BaseModel):
    authorize_url: str
    token_url: str
    client_id: str
    audience: str | None
    scope: str


class ConsoleConfig(BaseModel):
    version: str
    auth_mode: str
    public_read: bool
    oidc: OidcLogin | None


@router.get("/api/v1/console", summary="What the web console needs to know about this server")
async def console_config(request: Request) -> ConsoleConfig:
    settings = services_of(request).settings
    oidc = None
    if (
        settings.auth_mode == "oidc"
        and settings.oidc_authorize_url
        and settings.oidc_token_url
        and settings.oidc_client_id
    ):
        oidc = OidcLogin(
            authorize_url=settings.oidc_authorize_url,
            token_url=settings.oidc_token_url,
            client_id=settings.oidc_client_id,
            audience=settings.oidc_audience,
            scope=settings.oidc_scope,
        )
    return ConsoleConfig(
        version=__version__,
        auth_mode=settings.auth_mode,
        public_read=settings.public_read or settings.auth_mode == "none",
        oidc=oidc,
    )


@router.get(
    "/api/v1/me", summary="Who the token belongs to (401 without a valid one)", responses=ERRORS
)
async def me(who: Identity = Depends(user)) -> UserOut:
    return UserOut(id=who.user_id, name=who.user_name, roles=list(who.roles))
