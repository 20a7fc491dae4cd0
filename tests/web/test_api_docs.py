"""/docs and /redoc in Chromium with every request off this machine blocked, as on an
observatory's closed link: the pages and their operations render from the server alone
(api/docs.py)."""

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.servers import ServerProcess, start_server


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(None, tmp_path_factory.mktemp("docs"))
    yield server
    server.stop()


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page whose requests to anywhere but loopback fail, and are listed with their
    kind (script, stylesheet, image...)."""
    context = browser.new_context()
    blocked: list[str] = []

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(f"{route.request.resource_type} {route.request.url}")
            route.abort("internetdisconnected")

    context.route("**/*", only_loopback)
    yield context.new_page(), blocked
    context.close()


def test_swagger_ui_renders_the_operations_offline(docs_server, offline_page):
    page, blocked = offline_page
    page.goto(f"{docs_server.url}/docs")
    operations = page.locator(".opblock-summary-path")
    expect(operations.filter(has_text="/jobs/getnewjobs")).to_have_count(1, timeout=15_000)
    expect(operations.filter(has_text="/api/v1/sites/{site}/jobs/claim")).to_have_count(1)
    assert page.locator(".opblock").count() > 20
    assert blocked == []


def test_redoc_renders_the_operations_offline(docs_server, offline_page):
    page, blocked = offline_page
    page.goto(f"{docs_server.url}/redoc")
    # ReDoc lists each operation in its menu and renders it with its path.
    expect(page.get_by_text("/jobs/getnewjobs").first).to_be_attached(timeout=15_000)
    expect(page.locator("[role=menuitem]").first).to_be_visible()
    assert page.locator("[role=menuitem]").count() > 20
    # Only ReDoc's "by Redocly" badge is asked of its CDN; it hides itself when it fails.
    assert blocked in ([], ["image https://cdn.redoc.ly/redoc/logo-mini.svg"]), blocked
