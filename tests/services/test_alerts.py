"""Alerts against a real webhook receiver on loopback: what is alerted, in which shape,
retried, bounded, sent once among several processes, and never sent for a flap."""

import asyncio
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from obsrelay.bus import MemoryBus
from obsrelay.domain.jobs import Queue
from obsrelay.domain.presence import Call
from obsrelay.services.alerts import Alert, Alerts
from obsrelay.services.jobs import JobService
from obsrelay.services.presence import Presence
from obsrelay.services.sites import SiteRegistry
from obsrelay.services.stream import EventLog
from obsrelay.store.database import Database
from tests.api.test_metrics import scrape, value
from tests.commands import obsrelay_command
from tests.fakes import WebhookReceiver
from tests.helpers import new_job, newjob_body, raw
from tests.inprocess import InProcessApp
from tests.servers import register_site
from tests.services.test_presence import DEADLINES, OFFLINE_MS, Clock


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver()
    try:
        yield hook
    finally:
        hook.close()


def alerts_of(
    receiver: WebhookReceiver, site: str, wait: float = 0.5, until: int | None = None
) -> list[dict[str, Any]]:
    """The alerts about `site` sent within `wait` seconds (or until there are `until`).
    The store is shared with other tests, and the sweeps cover every site in it: their
    alerts are left out."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0 and len(found) != until:
        try:
            alert = receiver.json(timeout=left)
        except queue.Empty:
            break
        if alert["obsrelay"]["site"] == site:
            found.append(alert)
    return found


@pytest.fixture
def alerting(
    database_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> Iterator[InProcessApp]:
    app = InProcessApp(
        database_url,
        tmp_path,
        alert_webhook_url=receiver.url,
        alert_level="warning",
        # Not the site alerts: the store is shared with tests whose sites go offline.
        alert_events="message,failed",
    )
    try:
        yield app
    finally:
        app.close()


def test_messages_at_the_level_and_failed_jobs_are_alerted(
    alerting: InProcessApp, receiver: WebhookReceiver, site: str
):
    register_site(alerting.database_url, site)
    with alerting.client() as http:
        for level in ("info", "warning", "critical"):
            body = {"site": site, "log_message": f"dome {level}", "log_level": level}
            assert http.post("/logs/newlog", json=body).is_success
        warning, critical = receiver.json(), receiver.json()
        assert warning["text"] == f"{site} WARNING: dome warning"
        assert critical["obsrelay"] | {"timestamp": 0} == {
            "event": "message",
            "site": site,
            "level": "critical",
            "timestamp": 0,
        }
        job = http.post("/jobs/newjob", content=raw(newjob_body(site))).json()
        http.post("/jobs/getnewjobs", content=raw({"site": site}))
        report = {"site": site, "ulid": job["ulid"], "newStatus": "FAILED"}
        assert http.post("/jobs/updatejobstatus", json=report).is_success
        assert http.post("/jobs/updatejobstatus", json=report).is_success  # no change: no alert
        failed = receiver.json()
        assert failed["text"].startswith(f"Job {job['ulid']} at {site} FAILED: camera/camera1")
        assert failed["obsrelay"]["ulid"] == job["ulid"]
        receiver.nothing_more(0.5)
        assert value(scrape(http), "obsrelay_alerts_total", outcome="sent") == 3


def test_a_failing_webhook_is_retried_and_a_full_queue_drops_and_counts(
    database_url: str, tmp_path: Path, receiver: WebhookReceiver, site: str
):
    app = InProcessApp(
        database_url, tmp_path, alert_webhook_url=receiver.url, alert_events="message"
    )
    register_site(database_url, site)
    try:
        with app.client() as http:
            receiver.failures = 2
            body = {"site": site, "log_message": "rain", "log_level": "error"}
            assert http.post("/logs/newlog", json=body).is_success
            assert receiver.json(timeout=15)["text"] == f"{site} ERROR: rain"
            assert receiver.posts == 3

            receiver.hang.set()  # the webhook stops answering
            started = time.monotonic()
            batch = {"messages": [{"message": "storm", "level": "error"}] * 100}
            for _ in range(11):
                posted = http.post(f"/api/v1/sites/{site}/messages/batch", json=batch)
                assert posted.status_code == 201, posted.text
            assert time.monotonic() - started < 10  # never on the request's path
            assert value(scrape(http), "obsrelay_alerts_total", outcome="dropped") >= 1
    finally:
        receiver.hang.clear()
        app.close()


async def test_plain_text_for_ntfy_style_endpoints(receiver: WebhookReceiver):
    alerts = Alerts(receiver.url, plain_text=True)
    assert await alerts.deliver(Alert("offline", "mrc1", "Site mrc1 is OFFLINE.", {}))
    headers, body = receiver.received.get(timeout=5)
    assert body == b"Site mrc1 is OFFLINE."
    assert headers["Title"] == "obsrelay: offline at mrc1"


async def test_overdue_and_abandoned_jobs_are_alerted_once_among_processes(
    own_db: Database, site: str, receiver: WebhookReceiver
):
    db = own_db  # the sweep finds every job in the database overdue: none but these
    await SiteRegistry(db).register(site, "operator")
    clock = Clock(int(time.time() * 1000))
    events = EventLog(db, MemoryBus())
    jobs = JobService(db, events, clock_ms=clock)
    running = (await jobs.submit(new_job(site))).job
    held = (await jobs.submit(new_job(site))).job
    await jobs.claim(site, Queue.PRIMARY)
    await jobs.report_status(site, running.ulid, Queue.PRIMARY, "EXPOSING", 5)
    processes = [Alerts(receiver.url, events=frozenset({"overdue", "abandoned"})) for _ in "ab"]
    presences = [
        Presence(db, events, offline_after=60, deadlines=DEADLINES, clock_ms=clock, alerts=alerts)
        for alerts in processes
    ]
    for alerts in processes:
        await alerts.start()
    try:
        clock.now_ms += 5_000 + DEADLINES.overdue_grace_ms + 1
        await asyncio.gather(*(presence.check_jobs() for presence in presences))
        clock.now_ms += DEADLINES.abandoned_after_ms
        await asyncio.gather(*(presence.check_jobs() for presence in presences))
        await asyncio.gather(*(alerts.drain() for alerts in processes))
        sent = alerts_of(receiver, site)
        assert [(alert["obsrelay"]["event"], alert["obsrelay"]["ulid"]) for alert in sent] == [
            ("overdue", running.ulid),
            ("abandoned", held.ulid),
        ]
        assert "is overdue: EXPOSING" in sent[0]["text"]
    finally:
        for alerts in processes:
            await alerts.close()


async def test_a_site_offline_is_alerted_after_the_hold_and_a_flap_sends_nothing(
    db: Database, site: str, receiver: WebhookReceiver
):
    await SiteRegistry(db).register(site, "operator")
    clock = Clock(int(time.time() * 1000))
    alerts = Alerts(receiver.url)
    presence = Presence(
        db,
        EventLog(db, MemoryBus()),
        offline_after=OFFLINE_MS / 1000,
        deadlines=DEADLINES,
        clock_ms=clock,
        alerts=alerts,
        alert_offline_hold=60,
    )
    await alerts.start()
    try:
        presence.seen(site, Call.POLL_PRIMARY)
        await presence.flush()
        # A flap: offline for 30 s (under the hold), then back.
        clock.now_ms += OFFLINE_MS + 1
        await presence.flush()
        clock.now_ms += 30_000
        await presence.flush()
        presence.seen(site, Call.POLL_PRIMARY)
        await presence.flush()
        await alerts.drain()
        assert alerts_of(receiver, site, 0.3) == []

        # A real absence: offline, and still offline after the hold.
        went = clock.now_ms
        clock.now_ms += OFFLINE_MS + 1
        await presence.flush()
        clock.now_ms += 60_000
        await presence.flush()
        await presence.flush()  # nothing more: each absence is alerted once
        presence.seen(site, Call.MESSAGE)
        clock.now_ms += 1
        await presence.flush()
        await alerts.drain()
        offline, back = alerts_of(receiver, site)
        assert offline["obsrelay"]["event"] == "offline"
        assert offline["obsrelay"]["since_ms"] == went + OFFLINE_MS
        assert offline["text"].startswith(f"Site {site} is OFFLINE since ")
        assert back["obsrelay"]["event"] == "online"
        assert back["obsrelay"]["offline_since_ms"] == went + OFFLINE_MS
    finally:
        await alerts.close()


def test_alerts_test_sends_one_from_the_command_line(receiver: WebhookReceiver, tmp_path: Path):
    sent = obsrelay_command("alerts", "test", cwd=tmp_path, OBSRELAY_ALERT_WEBHOOK_URL=receiver.url)
    assert sent.returncode == 0, sent.stderr
    assert "Sent a test alert" in sent.stdout
    assert "a test alert" in receiver.json()["text"]
    assert "secret-token" not in sent.stdout + sent.stderr
    unset = obsrelay_command("alerts", "test", cwd=tmp_path)
    assert unset.returncode == 2 and "OBSRELAY_ALERT_WEBHOOK_URL" in unset.stderr


def test_an_unknown_alert_is_a_configuration_error(tmp_path: Path):
    wrong = obsrelay_command("alerts", "test", cwd=tmp_path, OBSRELAY_ALERT_EVENTS="offline,fire")
    assert wrong.returncode == 2 and "unknown alert fire" in wrong.stderr
