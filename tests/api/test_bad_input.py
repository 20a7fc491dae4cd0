"""Bad input on every endpoint: a 4xx with a sentence, and the database unchanged."""

import json
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from obsrelay.store.schema import job_history, jobs
from tests.helpers import StoreReader, newjob_body, raw
from tests.inprocess import InProcessApp

ULID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


def _snapshot(conn: sa.Connection) -> tuple[int, int, list[tuple[str, str, str]]]:
    n_jobs = conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one()
    n_history = conn.execute(sa.select(sa.func.count()).select_from(job_history)).scalar_one()
    states = conn.execute(
        sa.select(jobs.c.ulid, jobs.c.primary_status, jobs.c.alternate_status)
    ).all()
    return n_jobs, n_history, sorted((row[0], row[1], row[2]) for row in states)


@pytest.fixture(scope="module")
def store(app: InProcessApp) -> Iterator[StoreReader]:
    reader = StoreReader(app.database_url)
    try:
        yield reader
    finally:
        reader.close()


@pytest.fixture
def unchanged(store: StoreReader) -> Iterator[None]:
    """Asserts that the test leaves every stored job and history row as it was."""
    before = store.read(_snapshot)
    yield
    assert store.read(_snapshot) == before, "a refused request changed data"


def _sentence(response: httpx.Response) -> str:
    body = response.json()
    if isinstance(body, dict):
        body = body["detail"]
    if isinstance(body, list):  # getnewjobs: the sentence is in a header
        assert body == []
        body = response.headers["x-obsrelay-error"]
    assert isinstance(body, str) and len(body) > 10 and body.endswith("."), body
    return body


COMPAT_ENDPOINTS = [
    "/jobs/newjob",
    "/jobs/getnewjobs",
    "/jobs/updatejobstatus",
    "/jobs/startjob",
    "/jobs/getrecentjobs",
]


@pytest.mark.parametrize("path", COMPAT_ENDPOINTS)
@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "not a list"),
        (b'"mrc1"', "JSON object"),
        (b'{"site": "\xff"}', "UTF-8"),
        (b"[" * 100_000, "nested"),
    ],
)
def test_unreadable_bodies(http, unchanged, path, body, words):
    response = http.post(path, content=body)
    assert response.status_code == 400
    assert words.lower() in _sentence(response).lower()


@pytest.mark.parametrize("path", COMPAT_ENDPOINTS)
def test_huge_body_is_413(http, unchanged, path):
    response = http.post(path, content=b'{"site": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    assert response.status_code == 413
    assert "limit" in _sentence(response)


def test_huge_chunked_body_is_413(http, unchanged):
    def chunks() -> Iterator[bytes]:
        yield b'{"site": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    response = http.post("/jobs/newjob", content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize(
    "missing",
    [
        "site",
        "device",
        "instance",
        "action",
        "required_params",
        "optional_params",
        "user_name",
        "user_id",
    ],
)
def test_newjob_names_the_missing_key(http, unchanged, site, missing):
    body = newjob_body(site)
    del body[missing]
    response = http.post("/jobs/newjob", content=raw(body))
    assert response.status_code == 400
    assert f"'{missing}'" in _sentence(response)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("site", 42, "'site' must be a string"),
        ("site", "x" * 65, "at most 64"),
        ("site", "mrc 1", "letters, digits"),
        ("site", "", "must not be empty"),
        ("site", "../etc", "letters, digits"),
        ("required_params", "time=30", "'required_params' must be a JSON object"),
        ("optional_params", [1], "'optional_params' must be a JSON object"),
        ("required_params", None, "'required_params' must be a JSON object"),
        ("device", 3, "'device' must be a string"),
        ("action", "", "'action' must not be empty"),
        ("user_id", None, "'user_id' must be a string"),
        ("user_roles", "admin", "'user_roles' must be a list"),
    ],
)
def test_newjob_wrong_types(http, unchanged, site, key, value, words):
    body = newjob_body(site)
    body[key] = value
    response = http.post("/jobs/newjob", content=raw(body))
    assert response.status_code == 400
    assert words in _sentence(response)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"site": 5},
        {"site": "bad site"},
        {"site": "ok", "alternateQueue": "maybe"},
        {"site": "ok", "alternateQueue": [True]},
    ],
)
def test_getnewjobs_bad_input_still_answers_a_list(http, unchanged, body):
    response = http.post("/jobs/getnewjobs", content=raw(body))
    assert response.status_code == 400
    assert response.json() == []
    _sentence(response)


@pytest.mark.parametrize("path", ["/jobs/updatejobstatus", "/jobs/startjob"])
@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"ulid": ULID, "newStatus": "STARTED"}, 400, "'site'"),
        ({"site": "s1", "newStatus": "STARTED"}, 400, "'ulid'"),
        ({"site": "s1", "ulid": 7, "newStatus": "STARTED"}, 400, "'ulid'"),
        ({"site": "s1", "ulid": ULID, "newStatus": "STARTED"}, 404, "no job"),
        (
            {"site": "s1", "ulid": ULID, "newStatus": "X", "secondsUntilComplete": "soon"},
            400,
            "secondsUntilComplete",
        ),
        (
            {"site": "s1", "ulid": ULID, "newStatus": "X", "secondsUntilComplete": True},
            400,
            "secondsUntilComplete",
        ),
        (
            {"site": "s1", "ulid": ULID, "newStatus": "X", "alternateQueue": "perhaps"},
            400,
            "alternateQueue",
        ),
    ],
)
def test_status_updates_bad_input(http, unchanged, path, body, status, words):
    response = http.post(path, content=raw(body))
    assert response.status_code == status
    assert words in _sentence(response)


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (None, "missing"),
        (5, "must be a string"),
        ("", "must not be empty"),
        ("UNREAD", "UNREAD"),
        ("x" * 65, "at most 64"),
        ("<script>", "may hold only"),
    ],
)
def test_updatejobstatus_bad_status_leaves_job_alone(http, store, site, status, words):
    job = http.post("/jobs/newjob", content=raw(newjob_body(site))).json()
    with_status = {"site": site, "ulid": job["ulid"]}
    if status is not None:
        with_status["newStatus"] = status
    before = store.read(_snapshot)
    response = http.post("/jobs/updatejobstatus", content=raw(with_status))
    assert response.status_code == 400
    assert words.lower() in _sentence(response).lower()
    assert store.read(_snapshot) == before


@pytest.mark.parametrize(
    "body",
    [
        {"site": "s1", "timeRange": "day"},
        {"site": "s1", "timeRange": -5},
        {"site": "s1", "timeRange": True},
        {"timeRange": 5},
    ],
)
def test_getrecentjobs_bad_input(http, unchanged, body):
    response = http.post("/jobs/getrecentjobs", content=raw(body))
    assert response.status_code == 400
    _sentence(response)


# The native API.


def test_v1_submit_bad_bodies(http, unchanged, site):
    url = f"/api/v1/sites/{site}/jobs"
    cases = [
        (b"{broken", "not valid JSON"),
        (b"[]", "body"),
        (json.dumps({"instance": "c1", "action": "x"}).encode(), "'device'"),
        (
            json.dumps(
                {"device": "c", "instance": "c1", "action": "x", "required_params": "time=3"}
            ).encode(),
            "required_params",
        ),
        (json.dumps({"device": 5, "instance": "c1", "action": "x"}).encode(), "device"),
        (
            json.dumps({"device": "c", "instance": "c1", "action": "x", "bogus": 1}).encode(),
            "bogus",
        ),
    ]
    for body, words in cases:
        response = http.post(url, content=body, headers={"Content-Type": "application/json"})
        # Unreadable JSON is 400, as on the compatible API; the wrong shape 422.
        assert response.status_code == (400 if body == b"{broken" else 422), body
        assert words in _sentence(response), body


def test_v1_bad_site_and_unknown_jobs(http, unchanged, site):
    assert http.get("/api/v1/sites/bad%20site/jobs").status_code == 400
    assert http.get(f"/api/v1/sites/{'x' * 65}/jobs").status_code == 400
    for path in (
        f"/api/v1/sites/{site}/jobs/{ULID}/status",
        f"/api/v1/sites/{site}/jobs/{ULID}/cancel",
    ):
        response = http.post(path, json={"status": "STARTED"} if "status" in path else None)
        assert response.status_code == 404
        assert "no job" in _sentence(response)
    assert http.get(f"/api/v1/sites/{site}/jobs/{ULID}").status_code == 404
    assert http.get(f"/api/v1/sites/{site}/jobs?limit=0").status_code == 422
    assert http.get(f"/api/v1/sites/{site}/jobs?queue=third").status_code == 422
    assert http.post(f"/api/v1/sites/{site}/jobs/claim", json={"limit": -1}).status_code == 422


def test_v1_jobs_by_ulid_and_sites_bad_input(http, unchanged, site):
    for response in (http.get(f"/api/v1/jobs/{ULID}"), http.post(f"/api/v1/jobs/{ULID}/cancel")):
        assert response.status_code == 404
        assert "no job" in _sentence(response)
    assert http.get("/api/v1/sites/bad%20site/stream").status_code == 400
    assert http.get(f"/api/v1/sites/{site}/stream").json() == {"site": site, "head": 0}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"messages": []}, "at least 1"),
        ({"messages": [{"message": "x"}] * 101}, "at most 100"),
        ({"messages": [{"message": "fine"}, {"message": "x", "level": "loud"}]}, "level"),
        ({"messages": [{"message": "fine"}, {"text": "x"}]}, "message"),
        ({"messages": "hello"}, "messages"),
        ({}, "messages"),
    ],
)
def test_v1_message_batch_bad_input_stores_nothing(http, site, body, words):
    response = http.post(f"/api/v1/sites/{site}/messages/batch", json=body)
    assert response.status_code in (400, 422), response.text
    assert words in _sentence(response)
    assert http.get(f"/api/v1/sites/{site}/messages").json()["messages"] == []
