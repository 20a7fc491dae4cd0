"""The API's documentation pages, /docs (Swagger UI) and /redoc, served whole from this
server: their scripts and styles come from the `fastapi-offline` package's copies, not
from a CDN, so that they work on an observatory's poor or closed link.

It touches nothing but those static files and the app's OpenAPI URL.
"""

from importlib.resources import files

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
_ASSETS = files("fastapi_offline") / "static"
_TITLE = "obsrelay API"

router = APIRouter(include_in_schema=False)


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(_ASSETS))


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=_TITLE,
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
    )


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title=_TITLE,
        redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
        # Its fonts come from Google: the page falls back to the browser's own.
        with_google_fonts=False,
    )
