"""The attacks of issue 10, each against a real server: bad values, broken answers, anonymous
site calls, secrets in logs, existence oracles, a failing database. Each test failed before
the fix it covers. Its limits (floods, invented sites, hoarded connections) are in
test_limits.py."""

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import websockets

from obsrelay.store.database import open_database
from tests.commands import last_line, obsrelay_command
from tests.helpers import newjob_body, newlog_body, raw, ws_url
from tests.inprocess import InProcessApp
from tests.servers import register_site, start_server

SURROGATE = '"\\ud800"'  # a JSON escape Python reads as a lone surrogate


def newjob_text(site: str, params: str) -> bytes:
    """A newjob body whose required_params is the JSON text `params`, sent as is."""
    body = json.dumps(newjob_body(site, required_params="PARAMS"))
    return body.replace('"PARAMS"', params).encode()


def sentence(response: httpx.Response) -> str:
    body = response.json()
    if body == []:
        return str(response.headers["x-obsrelay-error"])
    return str(body["detail"] if isinstance(body, dict) else body)


def assert_site_still_served(http: httpx.Client, site: str) -> None:
    """The site's listings and polls answer normally."""
    assert http.post("/jobs/getnewjobs", content=raw({"site": site})).status_code == 200
    assert http.post("/jobs/getrecentjobs", content=raw({"site": site})).status_code == 200
    assert http.get(f"/api/v1/sites/{site}/jobs").status_code == 200


# 1. A job that cannot be stored or served is refused at the door.


@pytest.mark.parametrize(
    ("params", "words"),
    [
        (f'{{"a": {SURROGATE}}}', "required_params.a' holds a lone surrogate"),
        ('{"a": "x\\u0000y"}', "required_params.a' holds a NUL"),
        ('{"a": NaN}', "NaN"),
        ('{"a": -Infinity}', "-Infinity"),
        ('{"a": 1' + "0" * 30 + "}", "required_params.a' is a number too large"),
        ('{"a": 1' + "0" * 5000 + "}", "number too large"),
        ('{"a": 1e999}', "finite"),
        ('{"a": ' + "[" * 40 + "]" * 40 + "}", "more than 32 deep"),
        (f'{{"a": {{{SURROGATE}: 1}}}}', "lone surrogate"),
    ],
)
def test_unstorable_params_are_refused_and_nothing_breaks(http, site, params, words):
    good = http.post("/jobs/newjob", content=raw(newjob_body(site))).json()
    response = http.post("/jobs/newjob", content=newjob_text(site, params))
    assert response.status_code == 400
    assert words in sentence(response)
    claimed = http.post("/jobs/getnewjobs", content=raw({"site": site}))
    assert claimed.status_code == 200
    assert [job["ulid"] for job in claimed.json()] == [good["ulid"]]
    assert_site_still_served(http, site)


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/logs/newlog", '{"site": "S", "log_message": ' + SURROGATE + "}", "log_message"),
        ("/logs/newlog", '{"site": "S", "log_message": "a", "timestamp": 1' + "0" * 400 + "}", ""),
        ("/jobs/newjob", None, "user_name"),
        ("/jobs/updatejobstatus", '{"site": "S", "ulid": ' + SURROGATE + ', "newStatus": "X"}', ""),
        (
            "/jobs/updatejobstatus",
            '{"site": "S", "ulid": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "newStatus": "X", '
            '"secondsUntilComplete": 1' + "0" * 4000 + "}",
            "too large",
        ),
        ("/jobs/getrecentjobs", '{"site": "S", "timeRange": 1' + "0" * 300 + "}", "too large"),
    ],
)
def test_unstorable_values_anywhere_are_400(http, site, path, body, words):
    if body is None:
        body = json.dumps(newjob_body(site)).replace('"Ada Observer"', SURROGATE)
    response = http.post(path, content=body.replace('"S"', json.dumps(site)).encode())
    assert response.status_code == 400, response.text
    assert words in sentence(response)
    assert_site_still_served(http, site)


def test_native_api_refuses_unstorable_values(http, site):
    jobs = f"/api/v1/sites/{site}/jobs"
    body = '{"device": "camera", "instance": "c1", "action": "x", "required_params": {"a": BAD}}'
    for bad in (SURROGATE, "NaN", "1" + "0" * 25, '"\\u0000"'):
        response = http.post(
            jobs, content=body.replace("BAD", bad), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (bad, response.text)
        assert "required_params.a" in sentence(response) or "NaN" in sentence(response)
    bad_message = '{"message": ' + SURROGATE + "}"
    response = http.post(
        f"/api/v1/sites/{site}/messages",
        content=bad_message,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    for path in (
        f"{jobs}/%00",
        f"/api/v1/jobs/{'x' * 26}",
        f"{jobs}?after=%00",
        f"{jobs}?status=%00",
    ):
        response = http.get(path)
        assert response.status_code == 400, (path, response.text)
    assert http.get(f"/api/v1/sites/{site}/messages?since=nan").status_code == 422
    assert http.get(f"{jobs}?status=completed").status_code == 200
    assert_site_still_served(http, site)


def test_a_claim_that_cannot_be_answered_leaves_the_jobs_unread(tmp_path, site):
    """Defence in depth: a stored job that cannot be rendered is not marked RECEIVED."""
    url = f"sqlite:///{tmp_path / 'render.db'}"
    server = start_server(url, tmp_path)
    try:
        register_site(url, site)
        job = server.http.post("/jobs/newjob", content=raw(newjob_body(site))).json()
        import sqlite3

        with sqlite3.connect(tmp_path / "render.db") as conn:  # as an older version stored it
            conn.execute(
                "UPDATE jobs SET required_params = '{\"a\": NaN}' WHERE ulid = ?", (job["ulid"],)
            )
        polled = server.http.post("/jobs/getnewjobs", content=raw({"site": site}))
        assert polled.json() == [] and polled.status_code == 503
        with sqlite3.connect(tmp_path / "render.db") as conn:
            (status,) = conn.execute(
                "SELECT primary_status FROM jobs WHERE ulid = ?", (job["ulid"],)
            ).fetchone()
        assert status == "UNREAD"
    finally:
        server.stop()


async def downgrade(url: str, revision: str) -> None:
    db = open_database(url)
    try:
        await db.downgrade(revision)
    finally:
        await db.close()


def test_rows_stored_by_an_older_version_are_repaired(tmp_path, site):
    """Rows that an older version stored and that cannot be sent are repaired on upgrade."""
    import sqlite3

    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    server = start_server(url, tmp_path)
    register_site(url, site)
    job = server.http.post("/jobs/newjob", content=raw(newjob_body(site))).json()
    server.stop()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE jobs SET required_params = ?, optional_params = ? WHERE ulid = ?",
            ('{"a": NaN, "b": "\\ud800x", "c": 1' + "0" * 30 + "}", '{"d": Infinity}', job["ulid"]),
        )
    # Back to the schema of revision 0005, which stored such rows.
    asyncio.run(downgrade(url, "0005"))
    server = start_server(url, tmp_path)
    try:
        [listed] = server.http.post("/jobs/getrecentjobs", content=raw({"site": site})).json()
        assert listed["required_params"] == {"a": None, "b": "\ufffdx", "c": "1" + "0" * 30}
        assert listed["optional_params"] == {"d": None}
        [claimed] = server.http.post("/jobs/getnewjobs", content=raw({"site": site})).json()
        assert claimed["ulid"] == job["ulid"]
        assert "repaired" in server.log()
    finally:
        server.stop()


# 2. Every answer arrives.


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/jobs/getnewjobs", b'{"site": "s1", "wait": "\\u0001\\u007f\\n"}'),
        ("/logs/newlog", b'{"site": "\\u0001\\r\\n", "log_message": "m"}'),
        ("/jobs/getnewjobs", b'{"site": "\\u0085\\u2028\\ud800"}'),
        ("/logs/newlog", b'{"site": "s", "log_message": "m", "log_level": "\\u0000\\u001b[31m"}'),
    ],
)
def test_an_error_echoing_control_characters_still_answers(http, path, body):
    response = http.post(path, content=body)
    assert response.status_code == 400
    error = response.headers["x-obsrelay-error"]
    assert error.isascii() and error.isprintable()
    assert "\\u00" in error or "\\u2028" in error or "\\ud800" in error
    if path == "/jobs/getnewjobs":
        assert response.json() == []


# 3. Secure by default for site calls.


def test_a_site_with_a_key_always_requires_it_by_default(tmp_path, site):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    server = InProcessApp(url, tmp_path)  # OBSRELAY_SITE_KEYS left at its default
    try:
        key = last_line(obsrelay_command("sites", "add-key", site, OBSRELAY_DATABASE_URL=url))
        with server.client() as anonymous:
            job = anonymous.post("/jobs/newjob", content=raw(newjob_body(site))).json()
            taken = anonymous.post("/jobs/getnewjobs", content=raw({"site": site}))
            assert taken.status_code == 401 and taken.json() == []
            finished = anonymous.post(
                "/jobs/updatejobstatus",
                content=raw({"site": site, "ulid": job["ulid"], "newStatus": "COMPLETE"}),
            )
            assert finished.status_code == 401
            fake = anonymous.post("/logs/newlog", content=newlog_body(site, "Fake: roof closed"))
            assert fake.status_code == 401 and "has a key" in fake.json()
            assert anonymous.get("/logs/recent-logs", params={"site": site}).json() == []
        with server.client(headers={"X-Site-Key": key}) as real_site:
            [delivered] = real_site.post("/jobs/getnewjobs", content=raw({"site": site})).json()
            assert delivered["ulid"] == job["ulid"]
        # A site without a key is still served without one.
        keyless = site + "-nokey"
        with server.client() as other_site:
            assert other_site.post("/logs/newlog", content=newlog_body(keyless, "hi")).is_success
    finally:
        server.close()


# 8. Secrets never reach a log.


def test_tokens_and_keys_never_reach_the_log(tmp_path, site):
    server = start_server(
        f"sqlite:///{tmp_path / 'secrets.db'}",
        tmp_path,
        OBSRELAY_AUTH_MODE="local",
        OBSRELAY_LOG_REQUESTS="true",
        OBSRELAY_LOG_LEVEL="debug",
        OBSRELAY_PUBLIC_READ="false",
    )
    try:
        token = last_line(
            obsrelay_command(
                "tokens",
                "create",
                "--user",
                "u",
                "--name",
                "U",
                OBSRELAY_DATA_DIR=str(tmp_path / "var"),
            )
        )
        key = last_line(
            obsrelay_command("sites", "add-key", site, OBSRELAY_DATABASE_URL=server.database_url)
        )
        fake_key = "ork_0123456789ab_" + "S" * 43

        async def sockets() -> None:
            ws = await websockets.connect(ws_url(server.url, f"site={site}&token={token}"))
            await ws.close()
            with pytest.raises(websockets.InvalidStatus):
                await websockets.connect(ws_url(server.url, f"site={site}&token={token[:-4]}AAAA"))

        asyncio.run(sockets())
        server.http.post(
            "/logs/newlog", content=newlog_body(site, "m"), headers={"X-Site-Key": key}
        )
        server.http.post(
            "/logs/newlog",
            content=newlog_body(site, "m"),
            headers={"X-Site-Key": fake_key},
        )
        server.http.get(
            f"/api/v1/sites/{site}/jobs?token={token}",
            headers={"Authorization": f"Bearer {token}"},
        )
        time.sleep(0.3)
        log = server.log()
        assert "WebSocket" in log  # the websocket lines are there, without their secrets
        for secret in (token, token[-40:], key.split("_")[2], "S" * 43):
            assert secret not in log
    finally:
        server.stop()


# 9. No existence oracle.


def test_unknown_and_known_jobs_look_the_same_to_who_may_not_read_them(tmp_path, site):
    server = start_server(
        f"sqlite:///{tmp_path / 'oracle.db'}",
        tmp_path,
        OBSRELAY_PUBLIC_READ="false",
        OBSRELAY_AUTH_MODE="local",
    )
    try:
        register_site(server.database_url, site)
        other_key = last_line(
            obsrelay_command(
                "sites", "add-key", site + "-b", OBSRELAY_DATABASE_URL=server.database_url
            )
        )
        admin = ["tokens", "create", "--user", "u", "--name", "U", "--role", "admin"]
        token = last_line(obsrelay_command(*admin, OBSRELAY_DATA_DIR=str(tmp_path / "var")))
        job = server.http.post(
            "/jobs/newjob",
            content=raw(newjob_body(site)),
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        unknown = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
        for headers, status in (({}, 401), ({"X-Site-Key": other_key}, 404)):
            answers = [
                server.http.get(f"/api/v1/jobs/{ulid}", headers=headers)
                for ulid in (unknown, job["ulid"])
            ]
            assert answers[0].status_code == answers[1].status_code, headers
            if status:
                assert answers[0].status_code == status
            assert answers[0].json()["detail"].replace(unknown, "U") == answers[1].json()[
                "detail"
            ].replace(job["ulid"], "U")
    finally:
        server.stop()


# 7. A failing database is a 503, logged once.


@pytest.mark.slow
def test_a_database_outage_is_a_503_logged_once(postgres_url, tmp_path, site):
    from sqlalchemy.engine import make_url

    from tests.fakes import TcpProxy

    real = make_url(postgres_url)
    proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
    through_proxy = real.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    register_site(postgres_url, site)
    server = start_server(through_proxy, tmp_path)
    answers: list[tuple[str, int, object]] = []
    stop = False

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            n = 0
            while not stop:
                n += 1
                text = f"message {n}"
                posted = client.post("/logs/newlog", content=newlog_body(site, text))
                answers.append((text, posted.status_code, posted.json()))
                polled = client.post("/jobs/getnewjobs", content=raw({"site": site}))
                answers.append(("poll", polled.status_code, polled.json()))

    try:
        with ThreadPoolExecutor(4) as pool:
            loads = [pool.submit(load) for _ in range(4)]
            time.sleep(0.5)
            proxy.cut()
            time.sleep(1.5)
            proxy.restore()
            time.sleep(2)
            stop = True
            for done in loads:
                done.result()
        statuses = {status for _, status, _ in answers}
        assert statuses == {200, 503}, statuses
        for what, status, body in answers:
            if status == 503:
                assert body == [] if what == "poll" else "database is not answering" in str(body)
        assert all(status == 200 for _, status, _ in answers[-40:])  # it came back by itself
        stored = {
            message["message"]
            for message in server.http.get("/logs/recent-logs", params={"site": site}).json()
        }
        accepted = {text for text, status, _ in answers if status == 200 and text != "poll"}
        assert accepted <= stored  # nothing answered 200 was lost
        log = server.log()
        assert log.count("the database is not answering") == 1, log[-3000:]
        assert log.count("the database is answering again") == 1
        assert "requests were refused" in log
        assert "Traceback" not in log
    finally:
        server.stop()
        proxy.close()
