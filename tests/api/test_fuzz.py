"""Fuzzing the real app, bounded in time: no input gives a 5xx, and nothing stored
changes when the answer is a 4xx. The generators run out of coverage's reach
(`run_unmeasured`); the app they drive, in its own thread, is measured.

- schemathesis generates requests, valid and invalid, from the app's /openapi.json;
- hypothesis generates bodies for the compatible endpoints (which parse raw JSON and are
  not described by a schema): unicode with lone surrogates and control characters,
  huge numbers, NaN, deep nesting, every key with any type.
"""

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from obsrelay.store.schema import job_history, jobs, messages, site_keys, sites, stream_events
from tests.helpers import StoreReader, run_unmeasured
from tests.inprocess import InProcessApp

# The fuzzers are bounded by their number of examples (a few hundred each, per backend);
# this is only a safety net on a machine much slower than expected.
BUDGET_SECONDS = 60.0


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


_WATCHED = (jobs, job_history, messages, sites, site_keys, stream_events)
# What the store holds, in one statement: the rows of each table, and the jobs whose two
# queues differ.
_SNAPSHOT = sa.select(
    *(sa.select(sa.func.count()).select_from(table).scalar_subquery() for table in _WATCHED),
    sa.select(sa.func.count())
    .where(jobs.c.primary_status != jobs.c.alternate_status)
    .scalar_subquery(),
)


def _snapshot(conn: sa.Connection) -> tuple[Any, ...]:
    return tuple(conn.execute(_SNAPSHOT).one())


@pytest.fixture
def store(app: InProcessApp) -> Iterator[StoreReader]:
    reader = StoreReader(app.database_url)
    try:
        yield reader
    finally:
        reader.close()


def check(store: StoreReader, send: Any) -> httpx.Response:
    """Sends a request; asserts no 5xx, and no change in the store on a 4xx."""
    before = store.read(_snapshot)
    response: httpx.Response = send()
    assert response.status_code < 500, (response.request.url, response.text[:300])
    if 400 <= response.status_code < 500:
        assert store.read(_snapshot) == before, (response.request.url, response.text[:300])
    return response


def short_waits(body: Any) -> Any:
    """The body with a long-poll `wait` cut to a tenth of a second: a claim that waits
    would spend the budget idle (waiting is tested in tests/api/test_longpoll.py)."""
    wait = body.get("wait") if isinstance(body, dict) else None
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 0.1:
        return {**body, "wait": 0.1}
    return body


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() > self.end


def test_schemathesis_against_the_openapi(app: InProcessApp, store: StoreReader, site: str):
    import schemathesis
    from schemathesis.core import NotSet
    from schemathesis.generation import GenerationMode

    client = app.client(timeout=10)
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    deadline = Deadline(BUDGET_SECONDS)
    per_operation = max(3, 100 // len(operations))
    tried = 0

    def fuzz() -> None:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if deadline.passed():
                    break
                strategy = operation.as_strategy(generation_mode=mode)

                @fuzz_settings(per_operation)
                @given(case=strategy)
                def run(case: Any) -> None:
                    nonlocal tried
                    if deadline.passed():
                        return
                    tried += 1
                    path = case.formatted_path.replace("{site}", site)
                    body = case.body
                    content = None
                    headers = {k: str(v) for k, v in (case.headers or {}).items()}
                    if isinstance(body, bytes):
                        content = body
                    elif body is not None and not isinstance(body, NotSet):
                        content = json.dumps(short_waits(body), default=str).encode()
                        headers.setdefault("Content-Type", "application/json")
                    check(
                        store,
                        lambda: client.request(
                            case.method,
                            path,
                            params=case.query,
                            content=content,
                            headers=headers,
                        ),
                    )

                # Some operations have no invalid form (nothing to get wrong).
                with contextlib.suppress(Unsatisfiable):
                    run()

    try:
        run_unmeasured(fuzz)
    finally:
        client.close()
    assert tried > 50, tried


# The compatible endpoints read raw JSON; these bodies probe every key with any value.

_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=30
) | st.sampled_from(
    ["", "\x00", "\ud800", "\u0001\r\n", "x" * 300, "NaN", "01HZZZZZZZZZZZZZZZZZZZZZZZ"]
)
_numbers = st.integers(min_value=-(10**30), max_value=10**30) | st.floats(
    allow_nan=True, allow_infinity=True
)
_json = st.recursive(
    st.none() | st.booleans() | _numbers | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_KEYS = {
    "/jobs/newjob": [
        "site",
        "device",
        "instance",
        "action",
        "required_params",
        "optional_params",
        "user_name",
        "user_id",
        "user_roles",
    ],
    "/jobs/getnewjobs": ["site", "alternateQueue", "wait"],
    "/jobs/updatejobstatus": [
        "site",
        "ulid",
        "newStatus",
        "secondsUntilComplete",
        "alternateQueue",
    ],
    "/jobs/startjob": ["site", "ulid"],
    "/jobs/getrecentjobs": ["site", "timeRange"],
    "/logs/newlog": ["site", "log_message", "log_level", "timestamp"],
}


_ALL_KEYS = sorted({key for keys in _KEYS.values() for key in keys})


def _raw_extras() -> st.SearchStrategy[bytes]:
    deep = st.integers(min_value=30, max_value=5000).map(lambda n: b"[" * n + b"]" * n)
    huge = st.integers(min_value=20, max_value=6000).map(lambda n: b'{"site": 1' + b"0" * n + b"}")
    return deep | huge | st.binary(max_size=64)


def test_generated_bodies_for_the_compatible_endpoints(
    app: InProcessApp, store: StoreReader, site: str
):
    deadline = Deadline(BUDGET_SECONDS)
    client = app.client(timeout=10)
    tried = 0

    @fuzz_settings(250)
    @given(
        path=st.sampled_from(sorted(_KEYS)),
        values=st.dictionaries(
            st.sampled_from([key for keys in _KEYS.values() for key in keys]), _json, max_size=9
        ),
        real_site=st.booleans(),
        extra=st.none() | _raw_extras(),
    )
    def run(path: str, values: dict[str, Any], real_site: bool, extra: bytes | None) -> None:
        nonlocal tried
        if deadline.passed():
            return
        tried += 1
        if real_site:
            values["site"] = site
        content = extra if extra is not None else json.dumps(short_waits(values)).encode()
        check(store, lambda: client.post(path, content=content))

    try:
        run_unmeasured(run)
    finally:
        client.close()
    assert tried > 50, tried
