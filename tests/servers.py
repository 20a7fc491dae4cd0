"""Real servers and databases for the tests: an obsrelay process on a free port, a fresh
PostgreSQL database, and the rule that a missing PostgreSQL skips locally but fails in CI."""

import asyncio
import functools
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from obsrelay.services.sites import SiteRegistry
from obsrelay.store.database import open_database
from tests.forkserver import ForkedProcess, run_forked

# A server process: forked from one that has imported the server, or a new interpreter.
Process = ForkedProcess | subprocess.Popen[bytes]

# Whether start_server forks its servers from a process that has imported the server
# already (tests/forkserver.py) rather than starting a new interpreter for each. The
# test suite turns it on (tests/conftest.py). A benchmark keeps new interpreters: the
# servers it compares, another checkout's among them, start as they do in production.
fork_servers = False

IN_CI = os.environ.get("CI", "").lower() == "true"

# What every test server and in-process app runs with, unless a test sets its own: the
# tests of auth and limits set theirs; the others act as anybody, as fast as they like.
TEST_SETTINGS: dict[str, object] = {
    "auth_mode": "none",
    "rate_jobs": 100000,
    "rate_messages": 100000,
    "rate_events": 100000,
    "rate_updates": 100000,
    "new_sites_per_client": 100000,
}


# The variables by which coverage measures a child process (its subprocess patch). A
# server of a race runs without them: the tracer would make it several times slower and
# change the very interleavings the race is about, and what such a server runs, the
# other tests measure.
UNMEASURED = frozenset({"COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START"})


def child_environment(env: Mapping[str, str], *, measured: bool = True) -> dict[str, str]:
    """The environment of an obsrelay process a test starts, as a person would start it:
    of the test's own environment no OBSRELAY_* variable is passed on, only those in
    `env`. `measured=False` keeps coverage's tracer out (see UNMEASURED).
    """
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OBSRELAY_") and (measured or name not in UNMEASURED)
    }
    return {**inherited, **env}


def unavailable(reason: str) -> None:
    """Skips the test, or fails it under CI=true where every backend must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: every backend must be available)")
    pytest.skip(reason)


# The databases register_site has migrated in this process: migrating again, for every
# test's site, would cost more than the registration (alembic reads each migration).
_migrated: set[str] = set()


def register_site(database_url: str, *names: str) -> None:
    """Registers sites in a server's database, as `obsrelay sites add` does."""

    async def register() -> None:
        db = open_database(database_url)
        try:
            if database_url not in _migrated:
                await db.upgrade()
                _migrated.add(database_url)
            registry = SiteRegistry(db)
            for name in names:
                await registry.register(name, "operator")
        finally:
            await db.close()

    # In a thread of its own: callers may be inside an event loop (async tests, Playwright).
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, register()).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _admin(url: str, statement: str) -> None:
    async_url = make_url(url).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(async_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


def postgres_admin_url() -> str:
    """The PostgreSQL server the tests may make databases on (OBSRELAY_TEST_POSTGRES_URL);
    the test is skipped without it (failed under CI=true)."""
    admin_url = os.environ.get("OBSRELAY_TEST_POSTGRES_URL")
    if not admin_url:
        unavailable(
            "PostgreSQL tests need OBSRELAY_TEST_POSTGRES_URL, e.g. "
            "postgresql://postgres@127.0.0.1:5432/test"
        )
    assert admin_url
    return admin_url


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test session, dropped afterwards."""
    admin_url = postgres_admin_url()
    name = f"obsrelay_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    except OSError as error:
        unavailable(f"PostgreSQL at {admin_url} does not answer: {error}")
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class ServerProcess:
    """An `obsrelay serve` process on a free loopback port."""

    url: str
    database_url: str
    process: Process
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @functools.cached_property
    def http(self) -> httpx.Client:
        """A client of this server for the server's life: making one costs 30 ms of CPU (its
        TLS context), more than most requests to it."""
        return httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        if "http" in self.__dict__:
            self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(
    database_url: str | None,
    workdir: Path,
    command: list[str] | None = None,
    *,
    port: int | None = None,
    measured: bool = True,
    python: str = sys.executable,
    **env: str,
) -> ServerProcess:
    """Starts obsrelay in its own process and waits until /healthz answers. In the test
    suite the process is forked from one that has imported the server (fork_servers),
    unless `python` asks for another interpreter. `command`: the arguments to Python
    (`-m obsrelay serve` unless given).

    With `database_url` None the server uses its default (obsrelay.db in its data
    directory, `workdir`/var unless `OBSRELAY_DATA_DIR` is given);
    `port` to come back where a stopped server was. `measured=False` keeps coverage's
    tracer out of the process (see UNMEASURED). `python`: another checkout's
    interpreter, for a benchmark's baseline.
    """
    port = port or free_port()
    log_path = workdir / f"server-{port}.log"
    settings = {
        **({"OBSRELAY_DATABASE_URL": database_url} if database_url else {}),
        "OBSRELAY_PORT": str(port),
        "OBSRELAY_HOST": "127.0.0.1",
        **{f"OBSRELAY_{name.upper()}": str(value) for name, value in TEST_SETTINGS.items()},
        "OBSRELAY_DATA_DIR": str(workdir / "var"),
        **env,
    }
    environment = child_environment(settings, measured=measured)
    # "{port}" in a command stands for the free port chosen here.
    argv = [arg.format(port=port) for arg in command or ["-m", "obsrelay", "serve"]]
    process: Process
    if fork_servers and python == sys.executable and argv[0] == "-m":
        # As `python -m ...` would run, without its second of imports.
        process = run_forked(argv[1], argv[2:], environment, workdir, log_path)
    else:
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [python, *argv],
                cwd=workdir,
                env=environment,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
    # The server's own default: obsrelay.db in its data directory.
    data_dir = settings["OBSRELAY_DATA_DIR"] or str(
        Path(environment.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "obsrelay"
    )
    default_url = f"sqlite:///{(workdir / data_dir).resolve() / 'obsrelay.db'}"
    server = ServerProcess(
        f"http://127.0.0.1:{port}", database_url or default_url, process, log_path
    )
    deadline = time.monotonic() + 30
    # One client for all the tries: making one costs 30 ms of CPU (its TLS context).
    with httpx.Client(base_url=server.url, timeout=1) as probe:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"obsrelay exited at start:\n{server.log()}")
            try:
                if probe.get("/healthz").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"obsrelay did not answer /healthz in 30 s:\n{server.log()}")


class RedisProcess:
    """A private redis-server on a free port, which a test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
