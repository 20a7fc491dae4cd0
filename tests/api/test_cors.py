"""CORS: obsrelay's middleware answers every request as Starlette's own CORS middleware
does, with a short way for requests without an Origin (api/middleware.py `CORS`)."""

from typing import Any

import httpx
import pytest
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from obsrelay.api.middleware import CORS
from tests.inprocess import InProcessApp

OPTIONS: dict[str, Any] = {
    "allow_methods": ["GET", "POST", "OPTIONS"],
    "allow_headers": ["Authorization", "Content-Type", "X-Site-Key"],
    "expose_headers": ["X-Obsrelay-Error"],
    "max_age": 600,
}
# The operator's choice (OBSRELAY_CORS_ORIGINS): named origins, or any.
ORIGINS = [["https://www.photonranch.org"], ["*"]]


def _answering(headers: list[tuple[bytes, bytes]]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def _headers(
    middleware: type, origins: list[str], inner: Any, request: dict[str, Any]
) -> list[tuple[str, str]]:
    transport = httpx.ASGITransport(app=middleware(inner, allow_origins=origins, **OPTIONS))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.request(**request)
    return sorted((name, value) for name, value in response.headers.multi_items())


@pytest.mark.parametrize("origins", ORIGINS)
@pytest.mark.parametrize(
    "inner_headers",
    [
        [(b"content-type", b"application/json")],
        [(b"content-type", b"application/json"), (b"vary", b"Accept-Encoding")],
        [(b"vary", b"Accept-Encoding"), (b"vary", b"Authorization")],
    ],
)
@pytest.mark.parametrize(
    "request_",
    [
        {"method": "POST", "url": "/jobs/newjob"},
        {"method": "GET", "url": "/healthz", "headers": {"X-Site-Key": "k"}},
        {
            "method": "POST",
            "url": "/jobs/newjob",
            "headers": {"Origin": "https://www.photonranch.org"},
        },
        {"method": "GET", "url": "/healthz", "headers": {"Origin": "https://elsewhere.example"}},
        {
            "method": "OPTIONS",
            "url": "/jobs/newjob",
            "headers": {
                "Origin": "https://www.photonranch.org",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        },
    ],
)
async def test_answers_as_starlettes_cors(
    origins: list[str], inner_headers: list[tuple[bytes, bytes]], request_: dict[str, Any]
):
    inner = _answering(inner_headers)
    ours = await _headers(CORS, origins, inner, request_)
    theirs = await _headers(CORSMiddleware, origins, inner, request_)
    assert ours == theirs


def test_the_apps_answers_vary_on_origin(sqlite_url, tmp_path):
    app = InProcessApp(sqlite_url, tmp_path)
    try:
        with app.client() as http:
            plain = http.get("/healthz")
            browser = http.get("/healthz", headers={"Origin": "https://www.photonranch.org"})
        assert plain.headers["vary"] == "Origin"
        assert "access-control-allow-origin" not in plain.headers
        assert browser.headers["access-control-allow-origin"] in (
            "*",
            "https://www.photonranch.org",
        )
    finally:
        app.close()
