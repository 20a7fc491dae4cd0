"""Small builders shared by the tests, a way to run a load out of coverage's reach,
and a reader of a server's database."""

import asyncio
import json
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from obsrelay.domain.jobs import Identity, NewJob
from obsrelay.store.database import open_database

T = TypeVar("T")

USER = Identity("user-1", "Ada Observer", ("observer",))


def new_job(site: str, action: str = "expose", params: dict[str, Any] | None = None) -> NewJob:
    return NewJob(
        site=site,
        device_type="camera",
        device_instance="camera1",
        action=action,
        required_params=params or {"time": 30},
        optional_params={"filter": "R"},
        user=USER,
    )


def newjob_body(site: str, **overrides: Any) -> dict[str, Any]:
    """What the browser posts to /jobs/newjob."""
    body: dict[str, Any] = {
        "site": site,
        "device": "camera",
        "instance": "camera1",
        "action": "expose",
        "required_params": {"time": "30", "image_type": "light"},
        "optional_params": {"filter": "R", "count": 1, "dither": False, "extra": "empty"},
        "user_name": "Ada Observer",
        "user_id": "google-oauth2|1234",
        "user_roles": ["admin"],
        "timestamp": 1731500000,
        "mount": "mount1",
    }
    body.update(overrides)
    return body


def raw(body: Any) -> bytes:
    """A body as the site software sends it: `data=json.dumps(...)`, no Content-Type."""
    return json.dumps(body).encode()


JOB_KEYS = {
    "site": str,
    "ulid": str,
    "statusId": str,
    "timestamp_ms": int,
    "deviceType": str,
    "deviceInstance": str,
    "action": str,
    "required_params": dict,
    "optional_params": dict,
    "user_name": str,
    "user_id": str,
    "user_roles": list,
    "secondsUntilComplete": int,
}


def assert_wire_job(job: Any) -> None:
    """Every key of docs/compatibility.md section 2's table, with its type."""
    assert isinstance(job, dict)
    for key, kind in JOB_KEYS.items():
        assert key in job, f"job lacks {key}"
        assert isinstance(job[key], kind), f"{key} is {type(job[key]).__name__}"
    assert len(job["ulid"]) == 26
    assert job["statusId"].endswith("#" + job["ulid"])
    assert all(isinstance(role, str) for role in job["user_roles"])


def newlog_body(site: str, text: str, level: str = "INFO", **extra: Any) -> bytes:
    """What the site software posts to /logs/newlog."""
    return raw({"site": site, "log_message": text, "log_level": level, **extra})


def ws_url(http_url: str, query: str, path: str = "/datastream") -> str:
    return http_url.replace("http://", "ws://") + f"{path}?{query}"


def run_unmeasured(work: Callable[[], T]) -> T:
    """Runs `work()` in a thread of its own, out of coverage's reach, and returns its
    result (or raises its exception).

    For what drives a load test or a fuzzer: client libraries and generators, which
    coverage does not measure, still pay its tracer on every call, and such a test makes
    millions of them (the twenty-poller race took 34 s traced, 6 s not). The obsrelay
    code under test runs elsewhere, measured or not as the test chooses: in the
    in-process app's thread, or in server processes (`start_server(measured=False)`).
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        sys.settrace(None)  # coverage installed its tracer in this thread as it started
        try:
            outcome.append(work())
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=run, name="unmeasured")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


class StoreReader:
    """Reads a server's database between a synchronous test's requests: a connection of
    its own (not a mock), kept open from one read to the next."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.db = open_database(url)

    def read(self, query: Callable[[sa.Connection], T]) -> T:
        return self.loop.run_until_complete(self.db.read(query))

    def close(self) -> None:
        self.loop.run_until_complete(self.db.close())
        self.loop.close()
