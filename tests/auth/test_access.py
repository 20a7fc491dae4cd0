"""The access policy against real servers: reservations, site keys, private reads, limits."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from obsrelay.auth.sitekeys import SiteKeys
from tests.commands import last_line, obsrelay_command
from tests.fakes import FakeCalendar, http_server
from tests.helpers import newjob_body, newlog_body, raw, ws_url
from tests.inprocess import InProcessApp
from tests.servers import ServerProcess, register_site, start_server


def cli(*args: str, database_url: str, data_dir: Path) -> str:
    """Runs `obsrelay ...` as an operator would; returns its last line."""
    return last_line(
        obsrelay_command(*args, OBSRELAY_DATABASE_URL=database_url, OBSRELAY_DATA_DIR=str(data_dir))
    )


@pytest.fixture(scope="module")
def calendar() -> Iterator[tuple[FakeCalendar, str]]:
    fake = FakeCalendar()
    with http_server(fake) as url:
        yield fake, url


@pytest.fixture(scope="module")
def local_server(tmp_path_factory, calendar) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("local")
    server = start_server(
        f"sqlite:///{workdir / 'local.db'}",
        workdir,
        OBSRELAY_AUTH_MODE="local",
        OBSRELAY_CALENDAR_URL=calendar[1],
    )
    try:
        yield server
    finally:
        server.stop()


def token(server: ServerProcess, user: str, *roles: str) -> str:
    args = ["tokens", "create", "--user", user, "--name", user.title()]
    for role in roles:
        args += ["--role", role]
    return cli(*args, database_url=server.database_url, data_dir=server.log_path.parent / "var")


def submit(server: ServerProcess, site: str, bearer: str) -> httpx.Response:
    return server.http.post(
        "/jobs/newjob",
        content=raw(newjob_body(site)),
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=10,
    )


def test_reservations(local_server, calendar, site):
    fake, _ = calendar
    holder, other, admin = (
        token(local_server, "holder"),
        token(local_server, "other"),
        token(local_server, "boss", "admin"),
    )
    fake.holders[site] = [{"id": "holder", "name": "Holder Person"}]
    free_site = site + "-free"
    broken_sites = [f"{site}-{behaviour}" for behaviour in ("down", "nonsense", "slow")]
    register_site(local_server.database_url, site, free_site, *broken_sites)
    assert submit(local_server, site, holder).status_code == 200
    refused = submit(local_server, site, other)
    assert refused.status_code == 401
    assert "Holder Person holds a reservation" in refused.json()
    assert submit(local_server, site, admin).status_code == 200
    assert submit(local_server, free_site, other).status_code == 200  # nobody holds it

    for behaviour in ("down", "nonsense", "slow"):
        broken = f"{site}-{behaviour}"
        fake.behaviour[broken] = behaviour
        started = time.monotonic()
        response = submit(local_server, broken, other)
        assert response.status_code == 503, behaviour
        assert "calendar" in response.json()
        assert time.monotonic() - started < 3.9, "a slow calendar must not hold the request"
        assert submit(local_server, broken, admin).status_code == 200  # admins never wait

    # Answers are cached for a few seconds per site.
    calls = fake.calls
    for _ in range(5):
        submit(local_server, site, holder)
    assert fake.calls == calls


def _calls(
    server: InProcessApp, site: str, ulid: str, headers: dict[str, str]
) -> list[httpx.Response]:
    """Every kind of call a site makes, made with `headers`."""
    with server.client(headers=headers) as client:
        return [
            client.post("/jobs/getnewjobs", content=raw({"site": site})),
            client.post(
                "/jobs/updatejobstatus",
                content=raw({"site": site, "ulid": ulid, "newStatus": "EXPOSING"}),
            ),
            client.post("/jobs/startjob", content=raw({"site": site, "ulid": ulid})),
            client.post("/logs/newlog", content=newlog_body(site, "hello")),
            client.post(f"/api/v1/sites/{site}/jobs/claim"),
            client.post(f"/api/v1/sites/{site}/jobs/{ulid}/status", json={"status": "SLEWING"}),
            client.post(f"/api/v1/sites/{site}/messages", json={"message": "hi"}),
            client.post(f"/api/v1/sites/{site}/events", json={"topic": "sitestatus", "data": 1}),
        ]


def _statuses(server: InProcessApp, site: str, ulid: str, headers: dict[str, str]) -> set[int]:
    return {response.status_code for response in _calls(server, site, ulid, headers)}


GOOD = {200, 201, 202}


@pytest.mark.parametrize("mode", ["off", "auto", "required"])
def test_site_keys(mode, tmp_path, site):
    # The keys are made and revoked through SiteKeys on the app's database, as the CLI
    # does (its commands are driven by the test below, once: they do not depend on the mode).
    server = InProcessApp(f"sqlite:///{tmp_path / 'keys.db'}", tmp_path, site_keys=mode)
    keys = SiteKeys(server.app.state.services.db)
    try:
        key = server.run(keys.add(site))
        other_key = server.run(keys.add(site + "-b"))
        with server.client() as browser:
            ulid = browser.post("/jobs/newjob", content=raw(newjob_body(site))).json()["ulid"]

        def statuses(headers: dict[str, str]) -> set[int]:
            return _statuses(server, site, ulid, headers)

        assert statuses({"X-Site-Key": key}) <= GOOD
        assert statuses({"Authorization": f"Bearer {key}"}) <= GOOD
        no_key, wrong_key, others_key = (
            statuses({}),
            statuses({"X-Site-Key": "ork_bad_key"}),
            statuses({"X-Site-Key": other_key}),
        )
        if mode == "off":
            assert no_key <= GOOD and wrong_key <= GOOD and others_key <= GOOD
        else:
            assert no_key == {401} and wrong_key == {401} and others_key == {403}
            refused = _calls(server, site, ulid, {})[0]
            assert refused.json() == [] and "key" in refused.headers["x-obsrelay-error"]

        assert server.run(keys.revoke(site, key.split("_")[1]))
        revoked = statuses({"X-Site-Key": key})
        assert revoked <= GOOD if mode == "off" else revoked == {401}
        # Its last key revoked, the site is served without one again, except in required.
        assert statuses({}) <= GOOD if mode != "required" else statuses({}) == {401}
    finally:
        server.close()


def test_site_keys_from_the_cli(own_database_url, tmp_path, site):
    """`obsrelay sites add-key`, `list` and `revoke-key`, in processes of their own, take
    effect on a running app at once, on both backends, though the app keeps what it read
    of a site's standing (store/site_changes.py)."""
    server = InProcessApp(own_database_url, tmp_path, site_keys="auto")
    try:
        # Served without a key first, so that the app keeps the site's keyless standing.
        with server.client() as browser:
            assert browser.post("/jobs/getnewjobs", content=raw({"site": site})).json() == []
        key = cli(
            "sites", "add-key", site, database_url=server.database_url, data_dir=tmp_path / "var"
        )
        with server.client() as browser:
            ulid = browser.post("/jobs/newjob", content=raw(newjob_body(site))).json()["ulid"]
        assert _statuses(server, site, ulid, {"X-Site-Key": key}) <= GOOD
        assert _statuses(server, site, ulid, {}) == {401}

        key_id = key.split("_")[1]
        listed = obsrelay_command("sites", "list", OBSRELAY_DATABASE_URL=server.database_url).stdout
        assert f"{site}\t{key_id}\tactive" in listed and key.split("_")[2] not in listed
        cli(
            "sites",
            "revoke-key",
            site,
            key_id,
            database_url=server.database_url,
            data_dir=tmp_path / "var",
        )
        assert _statuses(server, site, ulid, {"X-Site-Key": key}) == {401}
        assert _statuses(server, site, ulid, {}) <= GOOD
    finally:
        server.close()


def test_private_reads(tmp_path, site):
    server = start_server(
        f"sqlite:///{tmp_path / 'private.db'}",
        tmp_path,
        OBSRELAY_AUTH_MODE="local",
        OBSRELAY_PUBLIC_READ="false",
    )
    try:
        reader = token(server, "reader")
        reads = [
            ("POST", "/jobs/getrecentjobs", raw({"site": site})),
            ("GET", f"/logs/recent-logs?site={site}", None),
            ("GET", f"/api/v1/sites/{site}/jobs", None),
            ("GET", f"/api/v1/sites/{site}/messages", None),
        ]
        for method, path, body in reads:
            anonymous = server.http.request(method, path, content=body)
            assert anonymous.status_code == 401, path
            signed_in = server.http.request(
                method,
                path,
                content=body,
                headers={"Authorization": f"Bearer {reader}"},
            )
            assert signed_in.status_code == 200, path

        async def sockets() -> None:
            native = ws_url(server.url, "", path=f"/api/v1/sites/{site}/stream")
            for anonymous_url in (ws_url(server.url, f"site={site}"), native):
                with pytest.raises(websockets.InvalidStatus):
                    await websockets.connect(anonymous_url)
            for url in (
                ws_url(server.url, f"site={site}&token={reader}"),
                native + f"token={reader}",
            ):
                ws = await websockets.connect(url)
                await ws.close()

        asyncio.run(sockets())
    finally:
        server.stop()


def test_rate_limit_answers_429_with_retry_after(tmp_path, site):
    server = start_server(
        f"sqlite:///{tmp_path / 'limits.db'}",
        tmp_path,
        OBSRELAY_RATE_MESSAGES="1",
        OBSRELAY_RATE_BURST_SECONDS="3",
        OBSRELAY_MAX_SOCKETS_PER_CLIENT="2",
    )
    try:
        answers = [
            server.http.post("/logs/newlog", content=newlog_body(site, f"m{i}")) for i in range(4)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert int(answers[-1].headers["retry-after"]) >= 1
        assert "Too many messages" in answers[-1].json()
        other = server.http.post("/logs/newlog", content=newlog_body(site + "-b", "x"))
        assert other.status_code == 200  # the limit is per client per site
        stored = server.http.get("/logs/recent-logs", params={"site": site}).json()
        assert len(stored) == 3

        async def sockets() -> None:
            # One budget for both kinds of stream.
            native = ws_url(server.url, "", path=f"/api/v1/sites/{site}/stream")
            open_ = [
                await websockets.connect(url)
                for url in (ws_url(server.url, f"site={site}"), native)
            ]
            for url in (ws_url(server.url, f"site={site}"), native):
                with pytest.raises(websockets.InvalidStatus):
                    await websockets.connect(url)
            await open_[0].close()
            await asyncio.sleep(0.3)
            again = await websockets.connect(ws_url(server.url, f"site={site}"))
            for ws in (again, open_[1]):
                await ws.close()

        asyncio.run(sockets())
    finally:
        server.stop()
