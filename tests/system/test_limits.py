"""The limits of issue 10, each against a real server: floods that must not cost a real
site its messages, trusted proxies, invented sites, hoarded long-polls and sockets, and
requests that never finish. Each test failed before the fix it covers."""

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.commands import last_line, obsrelay_command
from tests.helpers import newjob_body, newlog_body, raw, run_unmeasured, ws_url
from tests.servers import ServerProcess, register_site, start_server

# 4. Rate limits that protect without losing a real site's data; 6. trusted proxies.


@pytest.fixture(scope="module")
def proxied(tmp_path_factory) -> Iterator[ServerProcess]:
    """A server with default limits that trusts 127.0.0.1 as its reverse proxy."""
    workdir = tmp_path_factory.mktemp("proxied")
    server = start_server(
        f"sqlite:///{workdir / 'proxied.db'}",
        workdir,
        OBSRELAY_TRUSTED_PROXIES="127.0.0.1",
        OBSRELAY_RATE_JOBS="5",
        OBSRELAY_RATE_MESSAGES="20",
        OBSRELAY_RATE_EVENTS="20",
        OBSRELAY_NEW_SITES_PER_CLIENT="5",
        OBSRELAY_MAX_WAITING_PER_CLIENT="4",
        OBSRELAY_MAX_SOCKETS_PER_CLIENT="3",
        OBSRELAY_REQUEST_TIMEOUT="1",
    )
    try:
        yield server
    finally:
        server.stop()


def from_address(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


@pytest.mark.slow
def test_a_flood_cannot_make_the_real_site_lose_messages(proxied: ServerProcess, site):
    attacker = from_address("203.0.113.66")

    def flood() -> httpx.Response:
        # As fast as it can until held: however fast this machine is, the burst runs out.
        with httpx.Client(base_url=proxied.url, headers=attacker) as client:
            for i in range(20_000):
                held = client.post("/logs/newlog", content=newlog_body(site, f"spam {i}"))
                if held.status_code == 429:
                    break
        return held

    assert run_unmeasured(flood).status_code == 429  # the flood itself is held
    # The real site's start-up burst: 300 messages, one at a time, as fast as it can.
    real_site = from_address("198.51.100.7")

    async def start_up() -> list[int]:
        # Eight at a time, on one loop in one thread: threads of a pool would each be traced.
        async with httpx.AsyncClient(base_url=proxied.url, headers=real_site) as client:
            gate = asyncio.Semaphore(8)

            async def post(i: int) -> int:
                async with gate:
                    message = newlog_body(site, f"start-up {i}")
                    return (await client.post("/logs/newlog", content=message)).status_code

            return list(await asyncio.gather(*(post(i) for i in range(300))))

    started = time.monotonic()
    statuses = run_unmeasured(lambda: asyncio.run(start_up()))
    assert statuses == [200] * 300, (
        f"lost {300 - statuses.count(200)} in {time.monotonic() - started:.2f} s"
    )
    stored = proxied.http.get("/logs/recent-logs", params={"site": site}).json()
    assert sum(message["message"].startswith("start-up") for message in stored) == 300


def test_forwarded_addresses_count_only_from_trusted_proxies(tmp_path, site):
    server = start_server(
        f"sqlite:///{tmp_path / 'untrusted.db'}",
        tmp_path,
        OBSRELAY_RATE_MESSAGES="1",
        OBSRELAY_RATE_BURST_SECONDS="3",
    )
    try:
        answers = [
            server.http.post(
                "/logs/newlog",
                content=newlog_body(site, "x"),
                headers=from_address(f"192.0.2.{i}"),  # a new "address" each time: ignored
            ).status_code
            for i in range(5)
        ]
        assert answers.count(429) == 2
    finally:
        server.stop()


def test_a_refused_user_costs_the_reservation_holder_nothing(tmp_path, site):
    from tests.fakes import FakeCalendar, http_server

    calendar = FakeCalendar()
    calendar.holders[site] = [{"id": "holder", "name": "Holder"}]
    with http_server(calendar) as calendar_url:
        server = start_server(
            f"sqlite:///{tmp_path / 'limits.db'}",
            tmp_path,
            OBSRELAY_AUTH_MODE="local",
            OBSRELAY_CALENDAR_URL=calendar_url,
            OBSRELAY_RATE_JOBS="1",
            OBSRELAY_RATE_BURST_SECONDS="3",
        )
        try:
            register_site(server.database_url, site)
            tokens = {
                user: last_line(
                    obsrelay_command(
                        "tokens",
                        "create",
                        "--user",
                        user,
                        "--name",
                        user,
                        OBSRELAY_DATA_DIR=str(tmp_path / "var"),
                    )
                )
                for user in ("holder", "intruder")
            }

            def submit(user: str) -> int:
                return server.http.post(
                    "/jobs/newjob",
                    content=raw(newjob_body(site)),
                    headers={"Authorization": f"Bearer {tokens[user]}"},
                ).status_code

            assert [submit("intruder") for _ in range(10)] == [401] * 10
            assert [submit("holder") for _ in range(3)] == [200] * 3
        finally:
            server.stop()


# 5. Nobody invents sites without bound.


def test_a_job_for_a_site_that_does_not_exist_is_refused(http, site):
    misspelt = "stie" + site[4:]
    response = http.post("/jobs/newjob", content=raw(newjob_body(misspelt)))
    assert response.status_code == 404
    assert f"There is no site '{misspelt}'" in response.json()
    assert f"Did you mean '{site}'" in response.json()
    native = http.post(
        f"/api/v1/sites/{misspelt}/jobs",
        json={"device": "camera", "instance": "c1", "action": "expose"},
    )
    assert native.status_code == 404 and site in native.json()["detail"]


def test_one_client_cannot_invent_sites_without_bound(proxied, site):
    inventor = from_address("203.0.113.99")
    answers = [
        proxied.http.post(
            "/logs/newlog",
            content=newlog_body(f"{site}-{i}", "x" * 16000),
            headers=inventor,
        )
        for i in range(30)
    ]
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == 5 and statuses.count(429) == 25
    assert "obsrelay sites add" in answers[-1].json()
    known = {entry["site"] for entry in proxied.http.get("/api/v1/sites").json()["sites"]}
    assert len({f"{site}-{i}" for i in range(30)} & known) == 5
    # Another client's keyless site software still registers its own site.
    other = proxied.http.post(
        "/jobs/getnewjobs",
        content=raw({"site": site + "-real"}),
        headers=from_address("198.51.100.20"),
    )
    assert other.status_code == 200


# 6. Connection budgets.


def test_long_polls_are_capped_per_client(proxied, site):
    hoarder = from_address("203.0.113.5")

    async def run() -> None:
        async with httpx.AsyncClient(base_url=proxied.url, timeout=10) as client:
            started = time.monotonic()
            polls = [
                client.post(
                    "/jobs/getnewjobs", content=raw({"site": site, "wait": 2}), headers=hoarder
                )
                for _ in range(8)
            ]
            other = client.post(
                "/jobs/getnewjobs",
                content=raw({"site": site, "wait": 2}),
                headers=from_address("198.51.100.5"),
            )
            answers = await asyncio.gather(*polls, other)
            took = time.monotonic() - started
        refused = [a for a in answers[:8] if "x-obsrelay-warning" in a.headers]
        assert len(refused) == 4
        for answer in refused:
            assert answer.json() == [] and answer.headers["x-obsrelay-wait"] == "0"
            assert "waiting requests" in answer.headers["x-obsrelay-warning"]
        assert "x-obsrelay-warning" not in answers[8].headers  # another client waits
        assert took >= 1.9

    asyncio.run(run())


def test_partial_requests_are_cut_off(proxied):
    sockets = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", int(proxied.url.rsplit(":", 1)[1])))
        sock.sendall(b"POST /jobs/getnewjobs HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sockets.append(sock)
    body_sock = socket.create_connection(("127.0.0.1", int(proxied.url.rsplit(":", 1)[1])))
    body_sock.sendall(
        b'POST /logs/newlog HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"site":'
    )
    assert proxied.http.get("/healthz").status_code == 200  # others are served
    time.sleep(2.5)
    for sock in sockets:
        sock.settimeout(2)
        answer = sock.recv(200)
        assert answer.startswith(b"HTTP/1.1 408") or answer == b""
        sock.close()
    body_sock.settimeout(2)
    assert b" 408 " in body_sock.recv(500)
    body_sock.close()


def test_big_client_frames_and_socket_caps(proxied, site):
    async def run() -> None:
        url = ws_url(proxied.url, f"site={site}")
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send("x" * (64 * 1024 + 1))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        headers = from_address("203.0.113.7")
        held = [await websockets.connect(url, additional_headers=headers) for _ in range(3)]
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(url, additional_headers=headers)
        other = await websockets.connect(url, additional_headers=from_address("198.51.100.9"))
        for ws in [*held, other]:
            await ws.close()

    asyncio.run(run())


def test_the_open_file_limit_is_raised_at_start(proxied):
    limits = Path(f"/proc/{proxied.process.pid}/limits").read_text()
    [line] = [line for line in limits.splitlines() if line.startswith("Max open files")]
    soft, hard = line.split()[3:5]
    assert soft == hard
