"""The attacks of issue 10, replayed against two builds of obsrelay side by side.

Each attack starts a fresh server from each build's source, with the **default settings**
except where the attack says otherwise, runs the attack from this process over loopback
and prints one figure per build:

    python -m bench.attacks                     # this checkout against commit dd33bf5
    python -m bench.attacks --before <commit>   # against another commit
    python -m bench.attacks --only flood        # one attack (a name from the table)

The older build is checked out in a temporary git worktree and run from its own source
with this checkout's virtual environment. Where a setting is newer than the older build
(OBSRELAY_TRUSTED_PROXIES), only the build that knows it gets it. The database outage
needs PostgreSQL: OBSRELAY_TEST_POSTGRES_URL or --postgres; without it, it is left out.
"""

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import websockets
from tests.forkserver import ForkedProcess, run_forked
from tests.helpers import newjob_body, newlog_body, raw
from tests.servers import free_port, fresh_postgres_database

from bench import SMOKE_NOTE

SITE = "mrc1"
ROOT = Path(__file__).resolve().parent.parent
SURROGATE = '"\\ud800"'  # a JSON escape that Python reads as a lone surrogate
# The setting: a process started with the usual soft limit of 1,024 descriptors.
SOFT_FILE_LIMIT = 1024


@dataclass(frozen=True)
class Build:
    label: str
    source: Path  # a checkout, with the package under src/

    def knows(self, setting: str) -> bool:
        config = (self.source / "src" / "obsrelay" / "config.py").read_text()
        return f"    {setting.lower()}:" in config


@dataclass
class Server:
    build: Build
    url: str
    database_url: str
    workdir: Path
    env: dict[str, str]
    process: "subprocess.Popen[bytes] | ForkedProcess"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def obsrelay(self, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
        """Runs this build's command line with the server's settings (and `settings`)."""
        env = {**self.env, **{f"OBSRELAY_{k}": v for k, v in settings.items()}}
        if FORKED:
            output = self.workdir / "command.out"
            forked = run_forked("obsrelay", list(args), env, self.workdir, output)
            code = forked.wait(60)
            return subprocess.CompletedProcess(args, code, output.read_text(), "")
        return subprocess.run(
            [sys.executable, "-m", "obsrelay", *args],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def add_site(self, site: str, key: bool = False) -> str:
        """Registers `site` where the build has a registry; returns its key if asked for one."""
        if key:
            return self.obsrelay("sites", "add-key", site).stdout.strip().splitlines()[-1]
        self.obsrelay("sites", "add", site)  # an older build has no registry: nothing to do
        return ""

    def admin(self) -> dict[str, str]:
        made = self.obsrelay(
            "tokens", "create", "--user", "ops", "--name", "Ops", "--role", "admin"
        )
        return {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}

    def peak_memory_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0


def _limit_files() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT_FILE_LIMIT, hard))


@contextlib.contextmanager
def serve(build: Build, database_url: str | None = None, **settings: str) -> Iterator[Server]:
    """A fresh `obsrelay serve` of `build` on its defaults plus `settings` it knows."""
    workdir = Path(tempfile.mkdtemp(prefix="obsrelay-attack-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSRELAY_")}
    env.update(
        PYTHONPATH=str(build.source / "src"),
        OBSRELAY_HOST="127.0.0.1",
        OBSRELAY_PORT=str(port),
        OBSRELAY_DATA_DIR=str(workdir / "var"),
        OBSRELAY_DATABASE_URL=database_url or f"sqlite:///{workdir / 'obsrelay.db'}",
    )
    env.update({f"OBSRELAY_{k}": v for k, v in settings.items() if build.knows(k)})
    process: subprocess.Popen[bytes] | ForkedProcess
    if FORKED:
        log_path = workdir / "server.log"
        process = run_forked(
            "obsrelay", ["serve"], env, workdir, log_path, open_files=SOFT_FILE_LIMIT
        )
    else:
        with open(workdir / "server.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "obsrelay", "serve"],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_limit_files,
            )
    server = Server(
        build, f"http://127.0.0.1:{port}", env["OBSRELAY_DATABASE_URL"], workdir, env, process
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{build.label} did not start:\n{server.log()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def newjob_text(site: str, params: str) -> bytes:
    body = json.dumps(newjob_body(site, required_params="PARAMS"))
    return body.replace('"PARAMS"', params).encode()


def forwarded(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


# Each attack takes a build and returns its figure in one line.


def _answer(send: Callable[[], httpx.Response]) -> httpx.Response | None:
    """The response, or None where the server closed the connection without one."""
    try:
        return send()
    except httpx.TransportError:
        return None


def _status(answer: httpx.Response | None) -> str:
    return "no answer" if answer is None else str(answer.status_code)


def unstorable_job(build: Build) -> str:
    """newjob with a lone surrogate in its params, then the site's poll and listing."""
    with serve(build) as server:
        server.add_site(SITE)
        with httpx.Client(base_url=server.url, headers=server.admin(), timeout=10) as http:
            good = {
                http.post("/jobs/newjob", content=raw(newjob_body(SITE))).json()["ulid"]
                for _ in range(3)
            }
            bad = _answer(
                lambda: http.post(
                    "/jobs/newjob", content=newjob_text(SITE, f'{{"a": {SURROGATE}}}')
                )
            )
            delivered: set[str] = set()
            polls = []
            for _ in range(2):  # the second poll takes what the first did not send
                poll = _answer(lambda: http.post("/jobs/getnewjobs", content=raw({"site": SITE})))
                polls.append(_status(poll))
                if poll is not None and poll.status_code == 200:
                    delivered |= {job["ulid"] for job in poll.json()}
            listing = _answer(lambda: http.get(f"/api/v1/sites/{SITE}/jobs"))
        return (
            f"newjob {_status(bad)}; polls {', '.join(polls)}; listing {_status(listing)}; "
            f"good jobs lost {len(good - delivered)} of 3"
        )


BAD_VALUES = [
    ("/logs/newlog", '{"site": "S", "log_message": ' + SURROGATE + "}"),
    ("/logs/newlog", '{"site": "S", "log_message": "a", "timestamp": 1' + "0" * 4000 + "}"),
    ("/logs/newlog", '{"site": ' + SURROGATE + ', "log_message": "a"}'),
    ("/jobs/newjob", newjob_text("S", '{"a": NaN}').decode()),
    ("/jobs/newjob", newjob_text("S", '{"a": 1' + "0" * 4000 + "}").decode()),
    ("/jobs/newjob", newjob_text("S", '{"a": ' + "[" * 5000 + "]" * 5000 + "}").decode()),
    ("/jobs/newjob", json.dumps(newjob_body("S", user_name="USER")).replace('"USER"', SURROGATE)),
    ("/jobs/updatejobstatus", '{"site": "S", "ulid": ' + SURROGATE + ', "newStatus": "X"}'),
    (
        "/jobs/updatejobstatus",
        '{"site": "S", "ulid": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "newStatus": "STARTED", '
        '"secondsUntilComplete": 1' + "0" * 4000 + "}",
    ),
    ("/jobs/getrecentjobs", '{"site": "S", "timeRange": 1' + "0" * 300 + "}"),
    ("/jobs/getnewjobs", '{"site": "S", "wait": 1' + "0" * 4000 + "}"),
    ("/logs/recent-logs?site=S&after_time=1" + "0" * 400, ""),
]


def bad_values(build: Build) -> str:
    """Unicode, huge numbers and deep nesting in every compatible endpoint."""
    with serve(build) as server:
        server.add_site(SITE)
        answers: Counter[str] = Counter()
        with httpx.Client(base_url=server.url, headers=server.admin(), timeout=10) as http:
            for path, body in BAD_VALUES:
                try:
                    text = body.replace('"S"', json.dumps(SITE)).encode()
                    path = path.replace("site=S", f"site={SITE}")
                    status = (http.post(path, content=text) if body else http.get(path)).status_code
                    answers["5xx" if status >= 500 else f"{status // 100}xx"] += 1
                except httpx.TransportError:
                    answers["no answer"] += 1
        return f"{len(BAD_VALUES)} requests: " + ", ".join(
            f"{n} {k}" for k, n in sorted(answers.items())
        )


def control_characters(build: Build) -> str:
    """A getnewjobs whose error sentence would echo a control character (raw socket)."""
    with serve(build) as server:
        server.add_site(SITE)
        body = b'{"site": "' + SITE.encode() + b'", "wait": "\\u0001"}'
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                b"POST /jobs/getnewjobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            answer = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    answer += chunk
        if not answer:
            return "no response at all (connection closed)"
        head, _, rest = answer.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n")[0].decode()
        return f"{status_line}; body {rest.decode()[:40]}"


def anonymous_on_keyed_site(build: Build) -> str:
    """A site with a key; an anonymous client takes, finishes and fakes for it."""
    with serve(build) as server:
        key = server.add_site(SITE, key=True)
        admin = server.admin()
        anonymous = httpx.Client(base_url=server.url, timeout=10)
        with httpx.Client(base_url=server.url, headers=admin, timeout=10) as user, anonymous:
            user.post("/jobs/newjob", content=raw(newjob_body(SITE)))
            taken = anonymous.post("/jobs/getnewjobs", content=raw({"site": SITE}))
            stolen = len(taken.json()) if taken.status_code == 200 else 0
            unread = user.post("/jobs/newjob", content=raw(newjob_body(SITE))).json()["ulid"]
            finished = anonymous.post(
                "/jobs/updatejobstatus",
                content=raw(
                    {
                        "site": SITE,
                        "ulid": unread,
                        "newStatus": "COMPLETE",
                        "secondsUntilComplete": -1,
                    }
                ),
            )
            anonymous.post(
                "/logs/newlog", content=newlog_body(SITE, "Fake: roof closed", "CRITICAL")
            )
            messages = user.get("/logs/recent-logs", params={"site": SITE}).json()
            faked = any(message["message"] == "Fake: roof closed" for message in messages)
            received = user.post(
                "/jobs/getnewjobs", content=raw({"site": SITE}), headers={"X-Site-Key": key}
            ).json()
        return (
            f"anonymous took {stolen} of 1 job; marked an unread job COMPLETE: "
            f"{finished.status_code == 200}; fake critical message stored: {faked}; "
            f"the real site then received {len(received)} of its 2 jobs"
        )


def _real_site_start_up(server: Server, headers: dict[str, str]) -> str:
    """The real site software's start-up: 300 messages one at a time, no retries."""
    started = time.monotonic()
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as site:
        statuses = [
            site.post("/logs/newlog", content=newlog_body(SITE, f"start-up {i}")).status_code
            for i in range(300)
        ]
    seconds = time.monotonic() - started
    return f"real site lost {300 - statuses.count(200)} of 300 (in {seconds:.2f} s)"


def flood(build: Build) -> str:
    """An anonymous flood of newlog to the site, then the real site's start-up burst."""
    with serve(build, TRUSTED_PROXIES="127.0.0.1") as server:
        server.add_site(SITE)
        with httpx.Client(base_url=server.url, headers=forwarded("203.0.113.66")) as attacker:
            refused = sum(
                attacker.post("/logs/newlog", content=newlog_body(SITE, f"spam {i}")).status_code
                == 429
                for i in range(1500)
            )
        real = _real_site_start_up(server, forwarded("198.51.100.7"))
        return f"flood of 1,500: {refused} refused; {real}"


def start_up_burst(build: Build) -> str:
    """The real site's start-up burst alone, on the default limits."""
    with serve(build) as server:
        server.add_site(SITE)
        return _real_site_start_up(server, {})


def refused_user(build: Build) -> str:
    """A user the reservation check refuses submits 10 times; then the holder submits 3.

    Settings: OBSRELAY_RATE_JOBS=1, OBSRELAY_RATE_BURST_SECONDS=3, a calendar that says
    the site is reserved by the holder."""
    from tests.fakes import FakeCalendar, http_server

    calendar = FakeCalendar()
    calendar.holders[SITE] = [{"id": "holder", "name": "Holder"}]
    with (
        http_server(calendar) as calendar_url,
        serve(build, CALENDAR_URL=calendar_url, RATE_JOBS="1", RATE_BURST_SECONDS="3") as server,
    ):
        server.add_site(SITE)
        tokens = {}
        for user in ("holder", "intruder"):
            made = server.obsrelay("tokens", "create", "--user", user, "--name", user)
            tokens[user] = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for _ in range(10):
                http.post(
                    "/jobs/newjob", content=raw(newjob_body(SITE)), headers=tokens["intruder"]
                )
            holder = [
                http.post(
                    "/jobs/newjob", content=raw(newjob_body(SITE)), headers=tokens["holder"]
                ).status_code
                for _ in range(3)
            ]
        return f"holder's 3 submissions answered {holder}"


def invented_sites(build: Build) -> str:
    """One anonymous client posts a 16 KB message to each of 300 invented sites."""
    with serve(build) as server:
        database = Path(server.database_url.removeprefix("sqlite:///"))

        def size() -> int:  # the database with its write-ahead log
            return sum(path.stat().st_size for path in database.parent.glob(database.name + "*"))

        before = size()
        text = "x" * 16_000
        with httpx.Client(base_url=server.url, timeout=10) as http:
            made = sum(
                http.post("/logs/newlog", content=newlog_body(f"invented{i}", text)).status_code
                == 200
                for i in range(300)
            )
        grown = (size() - before) / 1e6
        return f"{made} of 300 sites made; database grew {grown:.1f} MB"


def typo(build: Build) -> str:
    """`newjob` to "mcr1" when the site is "mrc1"."""
    with serve(build) as server:
        server.add_site(SITE)
        answer = httpx.post(
            f"{server.url}/jobs/newjob", content=raw(newjob_body("mcr1")), headers=server.admin()
        )
        return f"{answer.status_code} {answer.headers.get('x-obsrelay-error', '')}".strip()


async def _probe(url: str, headers: dict[str, str]) -> str:
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            answer = await client.post(
                f"{url}/jobs/getnewjobs", content=raw({"site": SITE}), headers=headers
            )
        return f"{answer.status_code} in {(time.monotonic() - started) * 1000:.0f} ms"
    except httpx.HTTPError as error:
        return f"failed after {time.monotonic() - started:.1f} s ({type(error).__name__})"


Held = list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]


async def _hold(port: int, request: bytes, held: Held) -> None:
    with contextlib.suppress(OSError):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        held.append((reader, writer))
        writer.write(request)
        await writer.drain()


async def _still_waiting(reader: asyncio.StreamReader) -> bool:
    """True while the server has neither answered nor closed the connection."""
    try:
        await asyncio.wait_for(reader.read(1), 0.05)
    except TimeoutError:
        return True
    except OSError:
        pass
    return False


def long_poll_hoarding(build: Build) -> str:
    """One client holds 1,100 long-polls ("wait": 20); another user polls at 2 s and 8 s."""
    with serve(build, TRUSTED_PROXIES="127.0.0.1") as server:
        server.add_site(SITE)
        port = int(server.url.rsplit(":", 1)[1])
        body = raw({"site": SITE, "wait": 20})
        request = (
            b"POST /jobs/getnewjobs HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.66\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

        async def attack() -> list[str]:
            held: Held = []
            await asyncio.gather(*(_hold(port, request, held) for _ in range(1100)))
            probes: list[str] = []
            first, second = WAITS.hoarding_probes
            for at in (first, second):
                await asyncio.sleep(at - (first if probes else 0))
                probes.append(await _probe(server.url, forwarded("198.51.100.7")))
            for _, writer in held:
                writer.close()
            return probes

        probes = asyncio.run(attack())
        return f"the other user's polls: {'; '.join(probes)}"


def slowloris(build: Build) -> str:
    """1,000 requests that never finish their headers; counted still open after 15 s."""
    timeout = WAITS.slowloris_request_timeout
    with serve(build, **({"REQUEST_TIMEOUT": timeout} if timeout else {})) as server:
        server.add_site(SITE)
        port = int(server.url.rsplit(":", 1)[1])
        partial = b"POST /jobs/getnewjobs HTTP/1.1\r\nHost: x\r\n"

        async def attack() -> tuple[int, str]:
            held: Held = []
            await asyncio.gather(*(_hold(port, partial, held) for _ in range(1000)))
            await asyncio.sleep(WAITS.slowloris)
            probe = await _probe(server.url, {})
            waiting = await asyncio.gather(*(_still_waiting(reader) for reader, _ in held))
            open_now = sum(waiting)
            for _, writer in held:
                writer.close()
            return open_now, probe

        open_now, probe = asyncio.run(attack())
        after = f"{WAITS.slowloris:g} s"
        return f"{open_now} of 1,000 still open after {after}; another user's poll then: {probe}"


def big_frames(build: Build) -> str:
    """Three 14 MB frames from a datastream client; the socket's fate and the server's memory."""
    with serve(build) as server:
        server.add_site(SITE)
        before = server.peak_memory_kib()
        frame = json.dumps({"action": "updatesubscribersite", "site": "x" * 14_000_000})

        async def attack() -> str:
            url = server.url.replace("http://", "ws://") + f"/datastream?site={SITE}"
            async with websockets.connect(url, max_size=None) as ws:
                try:
                    for _ in range(3):
                        await ws.send(frame)
                    await asyncio.sleep(1)
                    await ws.ping()
                    return "socket stays open"
                except websockets.ConnectionClosed as closed:
                    return f"socket closed with {closed.rcvd.code if closed.rcvd else 'no code'}"

        fate = asyncio.run(attack())
        grown = (server.peak_memory_kib() - before) / 1024
        return f"{fate}; the server's peak memory grew {grown:.0f} MB"


def token_in_log(build: Build) -> str:
    """A datastream connection with ?token=, and a key in a header, at the default log level."""
    with serve(build) as server:
        token = server.admin()["Authorization"].split()[1]
        key = server.add_site(SITE, key=True)

        async def connect() -> None:
            url = server.url.replace("http://", "ws://") + f"/datastream?site={SITE}&token={token}"
            async with websockets.connect(url):
                pass

        asyncio.run(connect())
        httpx.post(
            f"{server.url}/logs/newlog", content=newlog_body(SITE, "m"), headers={"X-Site-Key": key}
        )
        time.sleep(0.5)
        log = server.log()
        return f"token in the log {log.count(token)} times; key {log.count(key)} times"


def oracle(build: Build) -> str:
    """OBSRELAY_PUBLIC_READ=false: an unauthenticated read of an unknown and a known job."""
    with serve(build, PUBLIC_READ="false") as server:
        server.add_site(SITE)
        job = httpx.post(
            f"{server.url}/jobs/newjob", content=raw(newjob_body(SITE)), headers=server.admin()
        ).json()
        unknown = httpx.get(f"{server.url}/api/v1/jobs/01HZZZZZZZZZZZZZZZZZZZZZZZ").status_code
        known = httpx.get(f"{server.url}/api/v1/jobs/{job['ulid']}").status_code
        return f"unknown job {unknown}, known job {known}"


def database_outage(build: Build) -> str:
    """PostgreSQL taken away for 10 s under load (4 clients posting and polling)."""
    from sqlalchemy.engine import make_url
    from tests.fakes import TcpProxy

    with fresh_postgres_database() as database_url:
        real = make_url(database_url)
        proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
        through = real.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        during: Counter[str] = Counter()
        outage = threading.Event()
        stop = threading.Event()

        def load(url: str) -> None:
            with httpx.Client(base_url=url, timeout=15) as client:
                n = 0
                while not stop.is_set():
                    n += 1
                    for path, body in (
                        ("/logs/newlog", newlog_body(SITE, f"m {n}")),
                        ("/jobs/getnewjobs", raw({"site": SITE})),
                    ):
                        try:
                            status = str(client.post(path, content=body).status_code)
                        except httpx.TransportError:
                            status = "no answer"
                        if outage.is_set():
                            during[status] += 1

        try:
            with serve(build, database_url=through) as server:
                server.obsrelay("sites", "add", SITE, DATABASE_URL=database_url)
                loads = [threading.Thread(target=load, args=(server.url,)) for _ in range(4)]
                for thread in loads:
                    thread.start()
                time.sleep(WAITS.outage_settle)
                outage.set()
                proxy.cut()
                time.sleep(WAITS.outage)
                proxy.restore()
                outage.clear()
                time.sleep(WAITS.outage_after)
                stop.set()
                for thread in loads:
                    thread.join()
                log = server.log()
                answers = ", ".join(f"{n} x {status}" for status, n in sorted(during.items()))
                return (
                    f"answers during the outage: {answers}; log: {log.count('Traceback')} "
                    f"tracebacks, {len(log.encode()) / 1e6:.1f} MB"
                )
        finally:
            proxy.close()


@dataclass(frozen=True)
class Waits:
    """How long the attacks that are about time wait, in seconds. A smoke run shortens
    them, and the server's request timeout with the slowloris's, to show only that the
    attacks still run."""

    slowloris: float = 15.0
    slowloris_request_timeout: str | None = None  # None: the server's default
    hoarding_probes: tuple[float, float] = (2.0, 8.0)
    outage: float = 10.0
    outage_settle: float = 1.0
    outage_after: float = 3.0


# A smoke run forks its servers and commands from a process that has imported obsrelay
# (tests/forkserver.py) instead of starting new interpreters: two seconds less each.
FORKED = False
SMOKE_WAITS = Waits(
    slowloris=2.0,
    slowloris_request_timeout="1",
    hoarding_probes=(0.5, 1.0),
    outage=1.0,
    outage_settle=0.5,
    outage_after=1.0,
)
WAITS = Waits()


ATTACKS: dict[str, Callable[[Build], str]] = {
    "unstorable job": unstorable_job,
    "bad values": bad_values,
    "control characters": control_characters,
    "anonymous on keyed site": anonymous_on_keyed_site,
    "flood": flood,
    "start-up burst": start_up_burst,
    "refused user": refused_user,
    "invented sites": invented_sites,
    "typo": typo,
    "long-poll hoarding": long_poll_hoarding,
    "slowloris": slowloris,
    "big frames": big_frames,
    "token in log": token_in_log,
    "oracle": oracle,
}


@contextlib.contextmanager
def worktree(commit: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="obsrelay-before-")) / "src-tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", default="dd33bf5", help="The commit to compare against.")
    parser.add_argument("--only", action="append", help="Run only this attack (repeatable).")
    parser.add_argument("--postgres", default=os.environ.get("OBSRELAY_TEST_POSTGRES_URL"))
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="Every attack against this checkout only, without the older build.",
    )
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this side holds 1,100 sockets
    attacks = dict(ATTACKS)
    if args.postgres:
        os.environ["OBSRELAY_TEST_POSTGRES_URL"] = args.postgres  # fresh_postgres_database reads it
        attacks["database outage"] = database_outage
    else:
        print("database outage: left out (no --postgres or OBSRELAY_TEST_POSTGRES_URL)")
    chosen = {
        name: attack for name, attack in attacks.items() if not args.only or name in args.only
    }
    with contextlib.ExitStack() as stack:
        builds = [Build("after (this checkout)", ROOT)]
        if args.smoke:
            print(SMOKE_NOTE)
            global WAITS, FORKED
            WAITS, FORKED = SMOKE_WAITS, True
        else:
            before_source = stack.enter_context(worktree(args.before))
            builds.insert(0, Build(f"before ({args.before})", before_source))
        print("Every server runs on its defaults (SQLite, auth local) unless the attack says.")
        failed = []
        for name, attack in chosen.items():
            print(f"\n## {name}: {(attack.__doc__ or '').strip().splitlines()[0]}", flush=True)
            for build in builds:
                try:
                    figure = attack(build)
                except Exception as error:  # a broken build is a figure too
                    figure = f"the attack failed: {type(error).__name__}: {error}"
                    if build.source == ROOT:
                        failed.append(name)
                print(f"  {build.label:24} {figure}", flush=True)
    if failed:  # on this checkout, a failed attack is a broken benchmark (or server)
        raise SystemExit(f"attacks that failed on this checkout: {', '.join(failed)}")


if __name__ == "__main__":
    main()
