"""The hosted jobs service's API, replayed as the site software and browser call it.

A real obsrelay process on a free port; requests as the site software makes them:
`requests.post(url, data=json.dumps(body))`, so no Content-Type.
"""

import httpx
import pytest

from tests.helpers import assert_wire_job, newjob_body, raw


def post(http: httpx.Client, path: str, body: object) -> httpx.Response:
    response = http.post(path, content=raw(body))
    assert "content-type" not in response.request.headers
    return response


def test_browser_submits_and_site_polls(http: httpx.Client, site: str):
    body = newjob_body(site)
    created = http.post(
        f"/jobs/newjob?site={site}",
        json=body,
        headers={"Content-Type": "application/json;charset=UTF-8"},
    )
    assert created.status_code == 200
    job = created.json()
    assert_wire_job(job)
    assert job["statusId"] == f"UNREAD#{job['ulid']}"
    assert job["deviceType"] == "camera" and job["deviceInstance"] == "camera1"
    assert job["required_params"] == body["required_params"]
    assert job["optional_params"] == body["optional_params"]
    assert job["secondsUntilComplete"] == -1

    polled = post(http, "/jobs/getnewjobs", {"site": site})
    assert polled.status_code == 200
    [delivered] = polled.json()
    assert_wire_job(delivered)
    assert delivered["ulid"] == job["ulid"]
    assert delivered["statusId"] == f"RECEIVED#{job['ulid']}"
    assert post(http, "/jobs/getnewjobs", {"site": site}).json() == []


def test_site_in_body_wins_over_query(http: httpx.Client, site: str):
    job = post(http, "/jobs/newjob?site=elsewhere", newjob_body(site)).json()
    assert job["site"] == site
    assert [j["ulid"] for j in post(http, "/jobs/getnewjobs", {"site": site}).json()] == [
        job["ulid"]
    ]


def test_getnewjobs_returns_a_list_oldest_first(http: httpx.Client, site: str):
    assert post(http, "/jobs/getnewjobs", {"site": site}).json() == []
    ulids = [post(http, "/jobs/newjob", newjob_body(site)).json()["ulid"] for _ in range(4)]
    jobs = post(http, "/jobs/getnewjobs", {"site": site}).json()
    assert [job["ulid"] for job in jobs] == ulids
    for job in jobs:
        assert_wire_job(job)


@pytest.mark.parametrize(
    ("flag", "queue_read"),
    [
        (True, "alternate"),
        ("True", "alternate"),
        ("true", "alternate"),
        (False, "primary"),
        ("False", "primary"),
        ("false", "primary"),
    ],
)
def test_alternate_queue_flag_read_as_a_person_would(http, site, flag, queue_read):
    job = post(http, "/jobs/newjob", newjob_body(site)).json()
    assert len(post(http, "/jobs/getnewjobs", {"site": site, "alternateQueue": flag}).json()) == 1
    other = "primary" if queue_read == "alternate" else "alternate"
    other_flag = other == "alternate"
    # The other queue still has it, unread.
    again = post(http, "/jobs/getnewjobs", {"site": site, "alternateQueue": other_flag}).json()
    assert [j["ulid"] for j in again] == [job["ulid"]]


def test_update_status_on_each_queue(http: httpx.Client, site: str):
    job = post(http, "/jobs/newjob", newjob_body(site)).json()
    post(http, "/jobs/getnewjobs", {"site": site})
    update = {
        "site": site,
        "ulid": job["ulid"],
        "newStatus": "EXPOSING",
        "secondsUntilComplete": 30,
    }
    updated = post(http, "/jobs/updatejobstatus", update)
    assert updated.status_code == 200
    assert updated.json()["statusId"] == f"EXPOSING#{job['ulid']}"
    assert updated.json()["secondsUntilComplete"] == 30

    alt = post(
        http, "/jobs/updatejobstatus", {**update, "newStatus": "slewing", "alternateQueue": "True"}
    ).json()
    assert alt["statusId"] == f"EXPOSING#{job['ulid']}"
    assert alt["alternateStatusId"] == f"SLEWING#{job['ulid']}"

    for seconds in (None, ""):
        body = {"site": site, "ulid": job["ulid"], "newStatus": "STARTED"}
        if seconds is not None:
            body["secondsUntilComplete"] = seconds
        assert post(http, "/jobs/updatejobstatus", body).json()["secondsUntilComplete"] == -1


def test_startjob_then_complete_then_final(http: httpx.Client, site: str):
    job = post(http, "/jobs/newjob", newjob_body(site)).json()
    started = post(http, "/jobs/startjob", {"site": site, "ulid": job["ulid"]})
    assert started.status_code == 200
    assert started.json()["statusId"] == f"STARTED#{job['ulid']}"
    done = post(
        http, "/jobs/updatejobstatus", {"site": site, "ulid": job["ulid"], "newStatus": "COMPLETED"}
    )
    assert done.json()["statusId"] == f"COMPLETE#{job['ulid']}"
    late = post(
        http, "/jobs/updatejobstatus", {"site": site, "ulid": job["ulid"], "newStatus": "EXPOSING"}
    )
    assert late.status_code == 409
    assert "already COMPLETE" in late.json()


def test_unknown_job_is_404_and_creates_nothing(http: httpx.Client, site: str):
    response = post(
        http,
        "/jobs/updatejobstatus",
        {"site": site, "ulid": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "newStatus": "STARTED"},
    )
    assert response.status_code == 404
    assert isinstance(response.json(), str) and "no job" in response.json()
    assert post(http, "/jobs/getrecentjobs", {"site": site}).json() == []


def test_cancel_all_commands(http: httpx.Client, site: str):
    first = post(http, "/jobs/newjob", newjob_body(site)).json()
    second = post(http, "/jobs/newjob", newjob_body(site)).json()
    post(http, "/jobs/getnewjobs", {"site": site})
    third = post(http, "/jobs/newjob", newjob_body(site)).json()
    cancel = post(
        http,
        "/jobs/newjob",
        newjob_body(
            site,
            device="all",
            instance="all",
            action="cancel_all_commands",
            required_params={},
            optional_params={},
        ),
    ).json()
    delivered = post(http, "/jobs/getnewjobs", {"site": site}).json()
    assert [job["ulid"] for job in delivered] == [cancel["ulid"]]
    recent = {job["ulid"]: job for job in post(http, "/jobs/getrecentjobs", {"site": site}).json()}
    assert len(recent) == 4  # kept, not deleted
    for old in (first, second, third):
        assert recent[old["ulid"]]["statusId"] == f"CANCELLED#{old['ulid']}"
    late = post(
        http,
        "/jobs/updatejobstatus",
        {"site": site, "ulid": first["ulid"], "newStatus": "COMPLETE"},
    )
    assert late.status_code == 409


def test_getrecentjobs_time_range(http: httpx.Client, site: str):
    ulids = [post(http, "/jobs/newjob", newjob_body(site)).json()["ulid"] for _ in range(3)]
    recent = post(http, "/jobs/getrecentjobs", {"site": site, "timeRange": 60_000}).json()
    assert [job["ulid"] for job in recent] == ulids
    for job in recent:
        assert_wire_job(job)
    assert post(http, "/jobs/getrecentjobs", {"site": site}).json() == recent
    assert post(http, "/jobs/getrecentjobs", {"site": site, "timeRange": 0}).json() == []


def test_enclosure_site_is_just_a_site(http: httpx.Client, site: str):
    enclosure = site[:-1]
    assert post(http, "/jobs/getnewjobs", {"site": enclosure}).json() == []  # registers it
    post(http, "/jobs/newjob", newjob_body(enclosure))
    assert post(http, "/jobs/getnewjobs", {"site": site}).json() == []
    assert len(post(http, "/jobs/getnewjobs", {"site": enclosure}).json()) == 1


def test_cors_preflight_for_the_browser(http: httpx.Client):
    response = http.options(
        "/jobs/newjob",
        headers={
            "Origin": "https://www.photonranch.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://www.photonranch.org")
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
