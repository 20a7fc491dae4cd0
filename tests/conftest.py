"""Fixtures: databases on both backends, the real app in this process (`app`, `http`),
and real obsrelay server processes for what needs one (`server`)."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from obsrelay.bus import MemoryBus
from obsrelay.services.jobs import JobService
from obsrelay.services.stream import EventLog
from obsrelay.store.database import Database, open_database
from tests import servers
from tests.inprocess import InProcessApp
from tests.servers import (
    ServerProcess,
    fresh_postgres_database,
    register_site,
    start_server,
    unavailable,
)

BACKENDS = ["sqlite", "postgres"]


def pytest_configure(config: pytest.Config) -> None:
    # A server spared a new interpreter's 1.5 to 2 s of imports (tests/forkserver.py).
    servers.fork_servers = True


@pytest.fixture(scope="session", autouse=True)
def own_data_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Nothing a test runs uses the real ~/.local/share/obsrelay (the default data
    directory): the tests' own processes, and the obsrelay processes they start, get one
    of their own."""
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data-home"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'obsrelay.db'}"


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated test database, once per backend."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[Database]:
    database = open_database(url)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The session's database of a backend, which the tests share (each on sites of its
    own)."""
    async with migrated(database_url) as database:
        yield database


@pytest.fixture
def own_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A new database of this test alone, on the backend of `database_url`: for a test
    of a sweep over every site, which what the other tests leave in the shared database
    would slow down many times over (thousands of jobs from the races)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'own.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
async def own_db(own_database_url: str) -> AsyncIterator[Database]:
    async with migrated(own_database_url) as database:
        yield database


@pytest.fixture
def events(db: Database) -> EventLog:
    return EventLog(db, MemoryBus())


@pytest.fixture
def jobs(db: Database, events: EventLog) -> JobService:
    return JobService(db, events)


@pytest.fixture
def site(request: pytest.FixtureRequest) -> str:
    """A site name no other test uses, so tests share a database without interfering.

    It is registered, as an operator would, in the server of any fixture of
    SERVER_FIXTURES the test uses (a test that starts a server itself registers it).
    """
    name = f"site-{uuid.uuid4().hex[:10]}"
    for fixture in SERVER_FIXTURES:
        if fixture in request.fixturenames:
            server: ServerProcess | InProcessApp = request.getfixturevalue(fixture)
            if isinstance(server, InProcessApp):
                server.register_sites(name)
            else:
                register_site(server.database_url, name)
    return name


# The fixtures, here and in test modules, that give a running server or app.
SERVER_FIXTURES = ("app", "server", "console_server", "oidc_server", "local_server", "proxied")


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    """The real app in this process, once per backend (see tests/inprocess.py)."""
    running = InProcessApp(database_url, tmp_path_factory.mktemp("app"), longpoll_recheck=25)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real obsrelay process on a free port, once per backend."""
    workdir: Path = tmp_path_factory.mktemp("server")
    # A waiting claim is woken by the bus; a re-check of 25 s would show if it was not.
    process = start_server(database_url, workdir, OBSRELAY_LONGPOLL_RECHECK="25")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def http(app: InProcessApp) -> Iterator[httpx.Client]:
    """A client of the in-process app."""
    with app.client(timeout=20) as client:
        yield client


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("OBSRELAY_TEST_REDIS_URL")
    if not url:
        unavailable("Redis tests need OBSRELAY_TEST_REDIS_URL, e.g. redis://127.0.0.1:6379/0")
    assert url
    return url


# The modules that take longest, longest first, as `pytest --durations=0` summed them
# per file (2026-11-23, after server processes were forked). `make test` hands whole
# modules to its workers in collection order (--dist loadfile --no-loadscope-reorder);
# starting the long ones first keeps one from starting last while the other workers
# idle. Only the order depends on this list.
LONGEST_MODULES = (
    "tests/bench/test_smoke.py",
    "tests/bench/test_attacks_smoke.py",
    "tests/api/test_longpoll.py",
    "tests/system/test_pollers_race.py",
    "tests/api/compat/test_datastream.py",
    "tests/web/test_console.py",
    "tests/api/test_fuzz.py",
    "tests/client/test_client.py",
    "tests/services/test_alerts.py",
    "tests/system/test_limits.py",
    "tests/system/test_security.py",
    "tests/system/test_end_to_end.py",
    "tests/system/test_presence.py",
    "tests/services/test_state_machine.py",
    "tests/auth/test_access.py",
    "tests/api/test_bad_input.py",
    "tests/services/test_retention.py",
    "tests/auth/test_tokens.py",
    "tests/services/test_jobs.py",
    "tests/bus/test_redis_and_processes.py",
    "tests/web/test_api_docs.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0]
        if module in LONGEST_MODULES:
            return LONGEST_MODULES.index(module)
        return len(LONGEST_MODULES)

    items.sort(key=rank)  # stable: the order within a module, and of the rest, stays
