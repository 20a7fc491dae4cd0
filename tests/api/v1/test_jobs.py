"""The native job API under /api/v1, against the real app."""

from typing import Any

import httpx


def submit(http: httpx.Client, site: str, **overrides: object) -> Any:
    body = {
        "device": "camera",
        "instance": "camera1",
        "action": "expose",
        "required_params": {"time": 30},
        "optional_params": {"filter": "R"},
        **overrides,
    }
    response = http.post(f"/api/v1/sites/{site}/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_submit_claim_report_and_history(http: httpx.Client, site: str):
    job = submit(http, site)
    assert job["site"] == site and job["device"] == "camera"
    assert job["primary"]["status"] == "UNREAD" == job["alternate"]["status"]

    claimed = http.post(f"/api/v1/sites/{site}/jobs/claim").json()
    assert [j["ulid"] for j in claimed] == [job["ulid"]]
    assert claimed[0]["primary"]["status"] == "RECEIVED"

    url = f"/api/v1/sites/{site}/jobs/{job['ulid']}"
    exposing = http.post(f"{url}/status", json={"status": "exposing", "seconds_until_complete": 30})
    assert exposing.status_code == 200
    assert exposing.json()["primary"] | {"updated_ms": 0} == {
        "status": "EXPOSING",
        "seconds_until_complete": 30,
        "updated_ms": 0,
    }
    http.post(f"{url}/status", json={"status": "COMPLETE"})
    conflict = http.post(f"{url}/status", json={"status": "STARTED"})
    assert conflict.status_code == 409
    assert "already COMPLETE" in conflict.json()["detail"]

    detail = http.get(url).json()
    steps = [(h["queue"], h["status"]) for h in detail["history"]]
    assert steps == [
        ("primary", "UNREAD"),
        ("alternate", "UNREAD"),
        ("primary", "RECEIVED"),
        ("primary", "EXPOSING"),
        ("primary", "COMPLETE"),
    ]
    assert detail["history"][3]["seconds_until_complete"] == 30
    assert detail["history"][3]["source"] == "site"


def test_claim_with_limit_and_alternate_queue(http: httpx.Client, site: str):
    ulids = [submit(http, site)["ulid"] for _ in range(3)]
    first = http.post(f"/api/v1/sites/{site}/jobs/claim", json={"limit": 2}).json()
    assert [j["ulid"] for j in first] == ulids[:2]
    alternate = http.post(f"/api/v1/sites/{site}/jobs/claim", json={"queue": "alternate"}).json()
    assert [j["ulid"] for j in alternate] == ulids


def test_cancel(http: httpx.Client, site: str):
    waiting = submit(http, site)
    cancelled = http.post(f"/api/v1/sites/{site}/jobs/{waiting['ulid']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["primary"]["status"] == "CANCELLED"
    assert http.post(f"/api/v1/sites/{site}/jobs/claim").json() == []

    received = submit(http, site)
    http.post(f"/api/v1/sites/{site}/jobs/claim")
    refused = http.post(f"/api/v1/sites/{site}/jobs/{received['ulid']}/cancel")
    assert refused.status_code == 409
    assert "stop command" in refused.json()["detail"]


def test_list_with_filters_and_cursor_paging(http: httpx.Client, site: str):
    ulids = [submit(http, site)["ulid"] for _ in range(5)]
    seen, after = [], None
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        page = http.get(f"/api/v1/sites/{site}/jobs", params=params).json()
        seen += [j["ulid"] for j in page["jobs"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == ulids
    newest = http.get(f"/api/v1/sites/{site}/jobs", params={"order": "newest", "limit": 1})
    assert [j["ulid"] for j in newest.json()["jobs"]] == ulids[-1:]
    http.post(f"/api/v1/sites/{site}/jobs/claim", json={"limit": 1})
    received = http.get(f"/api/v1/sites/{site}/jobs", params={"status": "received"}).json()
    assert [j["ulid"] for j in received["jobs"]] == ulids[:1]
    http.post(f"/api/v1/sites/{site}/jobs/{ulids[0]}/status", json={"status": "COMPLETE"})
    for written in ("COMPLETE", "COMPLETED", "completed"):  # the report's alias reads too
        done = http.get(f"/api/v1/sites/{site}/jobs", params={"status": written}).json()
        assert [j["ulid"] for j in done["jobs"]] == ulids[:1], written


def test_the_two_apis_share_one_queue(http: httpx.Client, site: str):
    job = submit(http, site)
    polled = http.post("/jobs/getnewjobs", content=b'{"site": "%s"}' % site.encode()).json()
    assert [j["ulid"] for j in polled] == [job["ulid"]]
    assert http.post(f"/api/v1/sites/{site}/jobs/claim").json() == []


def test_openapi_documents_the_native_api(http: httpx.Client):
    spec = http.get("/openapi.json").json()
    paths = spec["paths"]
    assert "/api/v1/sites/{site}/jobs" in paths
    assert "/api/v1/sites/{site}/jobs/{ulid}/cancel" in paths
    assert http.get("/docs").status_code == 200


def test_health_and_readiness(http: httpx.Client):
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
