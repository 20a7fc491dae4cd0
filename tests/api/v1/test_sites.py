"""The sites' overview under /api/v1/sites, against the real app: every kind of site call
is a sign of life, per kind and per queue, through both APIs."""

import time

import httpx

from obsrelay.api.v1.sites import LastSeenOut
from obsrelay.domain.presence import Call
from tests.api.v1.test_jobs import submit


def test_the_last_seen_fields_are_the_kinds_of_call():
    assert set(LastSeenOut.model_fields) == {call.value for call in Call}


def test_a_site_never_seen_is_offline_since_it_was_added(http: httpx.Client, site: str):
    found = http.get(f"/api/v1/sites/{site}")
    assert found.status_code == 200, found.text
    view = found.json()
    assert (view["site"], view["online"], view["last_seen_ms"]) == (site, False, None)
    assert set(view["last_seen"].values()) == {None}
    assert view["jobs"] == {
        "unread": 0,
        "oldest_unread_ms": None,
        "received": 0,
        "running": 0,
        "overdue": [],
        "abandoned": [],
    }
    assert view["last_message"] is None


def test_every_site_call_counts_per_kind_and_queue(http: httpx.Client, site: str):
    before = int(time.time() * 1000)
    job = submit(http, site)
    submit(http, site)  # left unread
    assert http.post("/jobs/getnewjobs", json={"site": site, "alternateQueue": "True"}).is_success
    view = http.get(f"/api/v1/sites/{site}").json()
    assert view["online"] and view["since_ms"] >= before
    assert view["last_seen"]["poll_alternate"] >= before
    assert view["last_seen"]["poll_primary"] is None

    claimed = http.post(f"/api/v1/sites/{site}/jobs/claim", json={"limit": 1}).json()
    assert [j["ulid"] for j in claimed] == [job["ulid"]]
    report = {"site": site, "ulid": job["ulid"], "newStatus": "EXPOSING"}
    assert http.post("/jobs/updatejobstatus", json=report | {"secondsUntilComplete": 30}).is_success
    newlog = {"site": site, "log_message": "focus done", "log_level": "warning"}
    assert http.post("/logs/newlog", json=newlog).is_success
    event = {"topic": "sitestatus", "data": {"dome": "open"}}
    assert http.post(f"/api/v1/sites/{site}/events", json=event).is_success

    view = http.get(f"/api/v1/sites/{site}").json()
    seen = view["last_seen"]
    assert all(seen[call] >= before for call in seen), seen
    assert view["last_seen_ms"] == max(seen.values())
    assert view["jobs"]["unread"] == 1 and view["jobs"]["oldest_unread_ms"] >= before
    assert (view["jobs"]["received"], view["jobs"]["running"]) == (0, 1)
    assert view["last_message"]["level"] == "warning"

    listed = http.get("/api/v1/sites").json()
    assert listed["offline_after_seconds"] > 0
    [entry] = [entry for entry in listed["sites"] if entry["site"] == site]
    assert entry["online"] and entry["jobs"]["running"] == 1


def test_a_call_refused_before_it_is_let_in_does_not_count(http: httpx.Client, site: str):
    bad = http.post("/jobs/updatejobstatus", json={"site": site, "ulid": "x", "newStatus": "X"})
    assert bad.status_code == 400
    view = http.get(f"/api/v1/sites/{site}").json()
    assert view["last_seen"]["status"] is None and not view["online"]


def test_an_unknown_site_is_a_404_that_names_similar_ones(http: httpx.Client, site: str):
    missing = http.get(f"/api/v1/sites/{site}x")
    assert missing.status_code == 404
    assert f"There is no site '{site}x'" in missing.json()["detail"]
    assert site in missing.json()["detail"]
