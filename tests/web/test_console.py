"""The web console in a real browser: Debian's Chromium driven by Playwright, against
real servers. A site agent in the test (SiteClient) claims and reports the jobs.

Screenshots of the console go to var/screenshots, which git ignores, or to
OBSRELAY_SCREENSHOTS: `make screenshots` refreshes the committed ones in docs/screenshots,
which the README shows, when the console's look changes. Every page's console errors are
collected and must stay empty.
"""

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect

from obsrelay.client import SiteClient, UserClient
from tests.commands import last_line, obsrelay_command
from tests.servers import ServerProcess, free_port, register_site, start_server

pytestmark = pytest.mark.slow  # a browser

OpenPage = Callable[..., tuple[Page, "ConsoleErrors"]]

SCREENSHOTS = Path(
    os.environ.get(
        "OBSRELAY_SCREENSHOTS", Path(__file__).resolve().parents[2] / "var" / "screenshots"
    )
)
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}


class ConsoleErrors:
    """Console errors and uncaught exceptions of a page; some may be expected a while."""

    def __init__(self, page: Page) -> None:
        self.seen: list[str] = []
        self.expected: re.Pattern[str] | None = None
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.seen.append(f"uncaught: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        kind, text = message.type, message.text
        if kind == "error" and not (self.expected and self.expected.search(text)):
            self.seen.append(text)


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    contexts = []
    pages: list[tuple[Page, ConsoleErrors]] = []

    def open_page(url: str, viewport: dict[str, int] = DESKTOP) -> tuple[Page, ConsoleErrors]:
        context = browser.new_context(
            viewport={"width": viewport["width"], "height": viewport["height"]}
        )
        contexts.append(context)
        page = context.new_page()
        errors = ConsoleErrors(page)
        pages.append((page, errors))
        page.goto(url)
        return page, errors

    yield open_page
    for _, errors in pages:
        assert errors.seen == [], f"console errors: {errors.seen}"
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that need nothing of their own: each has its own site."""
    server = start_server(None, tmp_path_factory.mktemp("console"))
    yield server
    server.stop()


def _row(page: Page, ulid: str) -> Locator:
    return page.locator(f'#jobs tbody tr[data-ulid="{ulid}"]')


def _live(page: Page) -> None:
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=15_000)


def test_submit_watch_the_site_work_and_read_messages(
    console_server: ServerProcess, open_page: OpenPage, site: str
):
    with SiteClient(console_server.url, site) as agent:
        agent.post_message("Observatory online")
        page, _ = open_page(f"{console_server.url}/?site={site}")
        _live(page)
        expect(page.locator("#messages li")).to_have_count(1)

        # Submit from the form; the new row appears at the top, UNREAD.
        form = page.locator("#submit-form")
        form.get_by_label("Device type").fill("camera")
        form.get_by_label("Instance").fill("camera1")
        form.get_by_label("Action").fill("expose")
        page.locator('fieldset[data-params="required"] .add-row').click()
        page.get_by_label("required param name").fill("time")
        page.get_by_label("required param value").fill("30")
        page.locator('fieldset[data-params="optional"] .add-row').click()
        page.get_by_label("optional param name").fill("filter")
        page.get_by_label("optional param value").fill("R")
        form.get_by_role("button", name="Submit").click()
        first_row = page.locator("#jobs tbody tr").first
        expect(first_row).to_have_attribute("data-status", "UNREAD")
        ulid = first_row.get_attribute("data-ulid")
        assert ulid
        expect(first_row.locator(".params")).to_have_text('time=30 filter="R"')

        # The site works the job; each status shows without a reload.
        [job] = agent.claim(wait=5)
        assert (job.ulid, job.required_params, job.optional_params) == (
            ulid,
            {"time": 30},
            {"filter": "R"},
        )
        expect(_row(page, ulid)).to_have_attribute("data-status", "RECEIVED")
        agent.start(ulid)
        expect(_row(page, ulid)).to_have_attribute("data-status", "STARTED")
        agent.update(ulid, "EXPOSING", 30)
        row = _row(page, ulid)
        expect(row).to_have_attribute("data-status", "EXPOSING")
        expect(row.locator(".left")).to_have_text(re.compile(r"^(30|29|28) s$"))
        expect(row.locator(".left")).to_have_text(re.compile(r"^(2[0-8]) s$"), timeout=5000)
        agent.post_message("camera1: exposing 30 s through R", "info")
        agent.post_message("Wind rising", "warning")
        page.wait_for_timeout(300)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "console-desktop.png")
        agent.complete(ulid)
        expect(row).to_have_attribute("data-status", "COMPLETE")
        expect(row.locator(".primary-status .status")).to_have_css("color", "rgb(95, 184, 120)")

        # The whole history, from the row.
        row.click()
        history = page.locator("#job-history tbody tr td:nth-child(3)")
        expect(history).to_have_text(
            ["UNREAD", "UNREAD", "RECEIVED", "STARTED", "EXPOSING", "COMPLETE"]
        )
        page.keyboard.press("Escape")

        # Messages: live, coloured by level, filtered, searched.
        messages = page.locator("#messages li")
        expect(messages).to_have_count(3)
        expect(messages.nth(2)).to_have_class("lv-warning")
        page.locator("#level-filter").select_option("warning")
        expect(page.locator("#messages li:visible")).to_have_count(1)
        page.locator("#level-filter").select_option("debug")
        page.locator("#message-search").fill("EXPOSING")
        expect(page.locator("#messages li:visible")).to_have_text(
            [re.compile("camera1: exposing 30 s")]
        )
        page.locator("#message-search").fill("")

        # The form offers the submission again.
        options = page.locator("#recent-submissions option")
        expect(options.nth(1)).to_have_text("camera/camera1 expose time=30")
        page.locator("#recent-submissions").select_option("0")
        expect(form.get_by_label("Action")).to_have_value("expose")
        expect(page.get_by_label("optional param value")).to_have_value("R")


def test_cancel_one_job_and_cancel_all(
    console_server: ServerProcess, open_page: OpenPage, site: str
):
    with UserClient(console_server.url) as user, SiteClient(console_server.url, site) as agent:
        running = user.submit(site, "mount", "mount1", "slew", {"ra": 10, "dec": 41})
        agent.claim(wait=5)
        agent.start(running.ulid)
        waiting = [user.submit(site, "camera", "camera1", "expose", {"time": n}) for n in (1, 2)]
        page, _ = open_page(f"{console_server.url}/?site={site}")
        _live(page)
        expect(_row(page, running.ulid).locator("button.cancel")).to_have_count(0)
        _row(page, waiting[0].ulid).locator("button.cancel").click()
        expect(_row(page, waiting[0].ulid)).to_have_attribute("data-status", "CANCELLED")
        assert user.job(waiting[0].ulid).status == "CANCELLED"

        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#cancel-all").click()
        expect(_row(page, waiting[1].ulid)).to_have_attribute("data-status", "CANCELLED")
        expect(_row(page, running.ulid)).to_have_attribute("data-status", "CANCELLED")
        top = page.locator("#jobs tbody tr").first
        expect(top.locator("td:nth-child(3)")).to_have_text("cancel_all_commands")
        [cancel_all] = agent.claim(wait=5)
        assert (cancel_all.action, cancel_all.device, cancel_all.instance) == (
            "cancel_all_commands",
            "all",
            "all",
        )
        # Dismissing the confirmation sends nothing.
        page.once("dialog", lambda dialog: dialog.dismiss())
        page.locator("#cancel-all").click()
        page.wait_for_timeout(500)
        assert agent.claim(wait=0) == []


def test_phone_width(console_server: ServerProcess, open_page: OpenPage, site: str):
    with UserClient(console_server.url) as user, SiteClient(console_server.url, site) as agent:
        for number in range(3):
            user.submit(site, "camera", "camera1", "expose", {"time": 30 + number})
        agent.claim(wait=5, limit=1)
        agent.post_message("Dome open")
        agent.post_message("Focus run failed: star too faint", "error")
        page, _ = open_page(f"{console_server.url}/?site={site}", PHONE)
        _live(page)
        expect(page.locator("#messages li")).to_have_count(2)
        expect(page.locator("#jobs tbody tr button.cancel").first).to_be_in_viewport()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, "the page scrolls sideways at phone width"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "console-phone.png")
        page.locator("#jobs-panel").screenshot(path=SCREENSHOTS / "console-phone-jobs.png")
        page.locator("#messages-panel").screenshot(path=SCREENSHOTS / "console-phone-messages.png")


def test_auto_scroll_pauses_while_reading_back(
    console_server: ServerProcess, open_page: OpenPage, site: str
):
    with SiteClient(console_server.url, site) as agent:
        agent.post_messages([(f"line {n}", "info", None) for n in range(80)])
        page, _ = open_page(f"{console_server.url}/?site={site}")
        _live(page)
        messages = page.locator("#messages")
        expect(page.locator("#messages li")).to_have_count(80)
        at_end = "el => el.scrollTop + el.clientHeight >= el.scrollHeight - 24"
        assert messages.evaluate(at_end)
        messages.evaluate("el => { el.scrollTop = 0; }")
        page.wait_for_timeout(200)
        agent.post_messages([("after 1", "info", None), ("after 2", "info", None)])
        expect(page.locator("#new-messages")).to_have_text(re.compile("^2 new messages"))
        assert messages.evaluate("el => el.scrollTop") == 0
        page.locator("#new-messages").click()
        expect(page.locator("#new-messages")).to_be_hidden()
        assert messages.evaluate(at_end)
        agent.post_message("after 3")
        expect(page.locator("#messages li").last).to_contain_text("after 3")
        page.wait_for_timeout(200)
        assert messages.evaluate(at_end)
        # Two identical lines in the same second are two messages, and both are shown.
        agent.post_messages([("twice", "info", 1790000000.0)] * 2)
        expect(page.locator("#messages li")).to_have_count(85)


def test_sign_in_with_a_token_and_the_site_remembered(
    tmp_path: Path, open_page: OpenPage, site: str
):
    server = start_server(None, tmp_path, OBSRELAY_AUTH_MODE="local", OBSRELAY_PUBLIC_READ="false")
    try:
        token = _token(tmp_path)
        with SiteClient(server.url, site) as agent:
            agent.post_message("private hello")
        page, _ = open_page(server.url)
        expect(page.locator("#sign-in")).to_be_visible()
        expect(page.locator("#who")).to_have_text("not signed in")
        expect(page.locator("#cancel-all")).to_be_hidden()  # nobody to command as
        page.locator("#sign-in").click()
        page.locator("#token-input").fill(token)
        page.locator("#sign-in-form button[type=submit]").click()
        expect(page.locator("#who")).to_have_text("Ada Observer (admin)")
        assert page.evaluate("sessionStorage.getItem('obsrelay.token')") == token
        expect(page.locator("#site-list option")).to_have_count(1)
        page.locator("#site-input").fill(site)
        page.locator("#site-form button").click()
        _live(page)
        expect(page.locator("#messages li")).to_have_count(1)
        expect(page.locator("#cancel-all")).to_be_visible()
        assert page.url.endswith(f"/?site={site}")

        page.reload()  # the token (this tab) and the site survive a reload
        _live(page)
        expect(page.locator("#who")).to_have_text("Ada Observer (admin)")
        expect(page.locator("#site-input")).to_have_value(site)
        page.goto(server.url)  # without ?site=, the last site again
        expect(page.locator("#site-input")).to_have_value(site)
        _live(page)

        page.locator("#sign-out").click()
        expect(page.locator("#sign-in")).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('obsrelay.token')") is None
    finally:
        server.stop()


def _token(workdir: Path) -> str:
    created = obsrelay_command(
        "tokens", "create", "--user", "ada", "--name", "Ada Observer", "--role", "admin",
        cwd=workdir, OBSRELAY_DATA_DIR=str(workdir / "var"),
    )  # fmt: skip
    return last_line(created)


def test_the_console_survives_a_server_restart(tmp_path: Path, open_page: OpenPage, site: str):
    port = free_port()
    server = start_server(None, tmp_path, port=port)
    register_site(server.database_url, site)
    try:
        with UserClient(server.url) as user:
            job = user.submit(site, "camera", "camera1", "expose", {"time": 5})
        page, errors = open_page(f"{server.url}/?site={site}")
        _live(page)
        # While the server is away the browser reports the refused connections itself.
        errors.expected = re.compile(r"ERR_CONNECTION_REFUSED|WebSocket connection to .* failed")
        server.stop()
        expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        # Not a pill alone: the data goes visibly stale, and the countdowns stop.
        expect(page.locator("#stale")).to_contain_text("The connection to the server is lost since")
        expect(page.locator("#workspace")).to_have_class(re.compile(r"\bstale\b"))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "console-stale.png")
        server = start_server(None, tmp_path, port=port)
        # Events while the console is still away: replayed when it is back, each once.
        with SiteClient(server.url, site) as agent:
            agent.post_messages([(f"while away {n}", "info", None) for n in range(3)])
            agent.claim(wait=5)
            _live(page)
            errors.expected = None
            agent.post_message("after the restart")
            agent.complete(job.ulid)
        expect(_row(page, job.ulid)).to_have_attribute("data-status", "COMPLETE")
        expect(page.locator("#stale")).to_be_hidden()
        expect(page.locator("#workspace")).not_to_have_class(re.compile(r"\bstale\b"))
        expect(page.locator("#messages li .m-text")).to_have_text(
            ["while away 0", "while away 1", "while away 2", "after the restart"]
        )
        expect(page.locator("#jobs tbody tr")).to_have_count(1)
    finally:
        server.stop()


def test_oidc_mode_sends_the_browser_to_the_provider(tmp_path: Path, open_page: OpenPage):
    authorize = "http://127.0.0.1:9/authorize"  # nothing answers: only the address is checked
    server = start_server(
        None,
        tmp_path,
        OBSRELAY_AUTH_MODE="oidc",
        OBSRELAY_OIDC_JWKS_URL="http://127.0.0.1:9/jwks.json",
        OBSRELAY_OIDC_ISSUER="https://issuer.example/",
        OBSRELAY_OIDC_AUDIENCE="https://obsrelay.example/api",
        OBSRELAY_OIDC_AUTHORIZE_URL=authorize,
        OBSRELAY_OIDC_TOKEN_URL="http://127.0.0.1:9/token",
        OBSRELAY_OIDC_CLIENT_ID="console-client",
    )
    try:
        page, _ = open_page(server.url)
        expect(page.locator("#sign-in")).to_be_visible()
        with page.expect_request(re.compile(r"^http://127\.0\.0\.1:9/authorize")) as sent:
            page.route(re.compile(r"^http://127\.0\.0\.1:9/"), lambda route: route.abort())
            page.locator("#sign-in").click()
        query = dict(part.split("=", 1) for part in sent.value.url.split("?", 1)[1].split("&"))
        assert query["response_type"] == "code"
        assert query["client_id"] == "console-client"
        assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
        assert query["audience"] == "https%3A%2F%2Fobsrelay.example%2Fapi"
        assert query["redirect_uri"] == f"{server.url}/".replace(":", "%3A").replace("/", "%2F")
    finally:
        server.stop()


def test_the_overview_puts_offline_sites_first_and_a_site_says_when_it_went_offline(
    tmp_path: Path, open_page: OpenPage, site: str, browser: Browser
):
    server = start_server(
        None, tmp_path, OBSRELAY_SITE_OFFLINE_AFTER="2", OBSRELAY_JOB_OVERDUE_GRACE="0"
    )
    silent, busy = f"{site}-silent", f"{site}-busy"
    register_site(server.database_url, silent, busy)
    polling = threading.Event()

    def keep_polling(agent: SiteClient) -> None:
        while polling.is_set():
            agent.claim(wait=1)

    try:
        with UserClient(server.url) as user, SiteClient(server.url, busy) as agent:
            job = user.submit(busy, "camera", "camera1", "expose", {"time": 1})
            agent.claim(wait=5)
            agent.update(job.ulid, "EXPOSING", 1)
            agent.post_message("Exposure started", "warning")
            polling.set()
            poller = threading.Thread(target=keep_polling, args=(agent,), daemon=True)
            poller.start()
            page, _ = open_page(server.url)
            rows = page.locator("#sites tbody tr")
            expect(rows).to_have_count(2)
            expect(rows.nth(0)).to_have_attribute("data-site", silent)  # offline first
            expect(rows.nth(0)).to_contain_text("OFFLINE")
            expect(rows.nth(0)).to_contain_text("never")
            expect(rows.nth(1)).to_contain_text("online")
            # The job promised 1 s: with no report since, it is overdue.
            expect(rows.nth(1)).to_contain_text("1 overdue", timeout=15_000)
            expect(rows.nth(1).locator(".lv-warning")).to_contain_text("warning")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SCREENSHOTS / "console-overview.png")

            rows.nth(1).click()
            _live(page)
            expect(page.locator("#presence")).to_contain_text(f"{busy} is online")
            expect(_row(page, job.ulid).locator(".flag-overdue")).to_be_visible()
            polling.clear()
            poller.join(10)

        # The site's software stops: the page says since when, in UTC.
        expect(page.locator("#presence")).to_contain_text(
            re.compile(rf"{busy} is offline since \d\d:\d\d UTC"), timeout=15_000
        )
        page.screenshot(path=SCREENSHOTS / "console-offline-site.png")
        # Submitting to it asks first; declining sends nothing.
        asked: list[str] = []

        def answer(dialog: Any, accept: bool) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.once("dialog", lambda dialog: answer(dialog, False))
        form = page.locator("#submit-form")
        form.get_by_label("Device type").fill("camera")
        form.get_by_label("Instance").fill("camera1")
        form.get_by_label("Action").fill("expose")
        form.locator("button[type=submit]").click()
        expect(page.locator("#jobs tbody tr")).to_have_count(1)
        assert asked and f"{busy} is offline" in asked[0]
        page.once("dialog", lambda dialog: answer(dialog, True))
        form.locator("button[type=submit]").click()
        expect(page.locator("#jobs tbody tr")).to_have_count(2)

        # Times are UTC, or local at a click; the choice is kept.
        tokyo = browser.new_context(timezone_id="Asia/Tokyo", viewport=DESKTOP)  # type: ignore[arg-type]
        try:
            local = tokyo.new_page()
            local.goto(f"{server.url}/?site={busy}")
            time_cell = local.locator("#messages li .m-time").first
            expect(time_cell).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
            utc_text = time_cell.inner_text()
            local.locator("#zone").click()
            expect(local.locator("#zone")).to_have_text("local")
            expect(time_cell).not_to_have_text(utc_text)
            hours = int(time_cell.inner_text()[:2])
            assert hours == (int(utc_text[:2]) + 9) % 24
            local.reload()
            expect(local.locator("#zone")).to_have_text("local")
        finally:
            tokyo.close()
    finally:
        server.stop()


def test_reports_fold_long_messages_collapse_and_older_messages_load(
    console_server: ServerProcess, open_page: OpenPage, site: str
):
    two_days_ago = time.time() - 2 * 86400
    with UserClient(console_server.url) as user, SiteClient(console_server.url, site) as agent:
        agent.post_messages([(f"old {n}", "info", two_days_ago + n) for n in range(30)])
        agent.post_messages([(f"recent {n}", "info", None) for n in range(60)])
        agent.post_message("traceback:\n" + "x" * 3000, "error")
        job = user.submit(site, "camera", "camera1", "expose", {"time": 10})
        agent.claim(wait=5)
        for left in range(10, 0, -1):
            agent.update(job.ulid, "EXPOSING", left)
        agent.complete(job.ulid)
        page, _ = open_page(f"{console_server.url}/?site={site}")
        _live(page)

        # The long message shows its first lines, and all of it at a click.
        long_line = page.locator("#messages li").last
        text = long_line.locator(".m-text")
        expect(text).to_have_class(re.compile(r"\bcollapsed\b"))
        assert text.evaluate("el => el.clientHeight") < 100
        long_line.locator("button.more").click()
        expect(text).not_to_have_class(re.compile(r"\bcollapsed\b"))

        # The last day is loaded; scrolling to the top loads what came before.
        expect(page.locator("#messages li")).to_have_count(61)
        page.locator("#messages").evaluate("el => { el.scrollTop = 0; }")
        expect(page.locator("#messages li")).to_have_count(91)
        expect(page.locator("#messages li .m-text").first).to_have_text("old 0")

        # Ten progress reports fold into one row of the history.
        _row(page, job.ulid).click()
        history = page.locator("#job-history tbody tr")
        expect(history).to_have_count(14)
        expect(page.locator("#job-history tbody tr:visible")).to_have_count(5)
        page.locator("#job-history button.fold").click()
        expect(page.locator("#job-history tbody tr:visible")).to_have_count(14)
