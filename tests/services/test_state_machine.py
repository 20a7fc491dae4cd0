"""Property-based test of the job state machine on a real store (SQLite and PostgreSQL).

Random sequences of submissions (some of them `cancel_all_commands`), claims, status
reports, cancels and expiry on both queues are run against JobService and against a
dictionary model whose every decision is read from lifecycle's TRANSITIONS table. After
every step the store must match the model, and every step of every history must be a
transition that the table allows to whoever caused it.
"""

import asyncio
import itertools
import os
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from obsrelay.bus import MemoryBus
from obsrelay.domain.errors import Conflict
from obsrelay.domain.jobs import CANCEL_ALL_ACTION, Queue
from obsrelay.domain.lifecycle import FINAL_STATUSES, TRANSITIONS, Cause, state_of
from obsrelay.services.jobs import JobService
from obsrelay.services.stream import EventLog
from obsrelay.store.database import Database, open_database
from obsrelay.store.jobs import whole_history
from tests.helpers import new_job, run_unmeasured

REPORTED = ["STARTED", "EXPOSING", "complete", "COMPLETED", "FAILED", "cancelled", "slewing"]
NORMAL = {
    "complete": "COMPLETE",
    "COMPLETED": "COMPLETE",
    "cancelled": "CANCELLED",
    "slewing": "SLEWING",
}

# Who a history entry's source names, and the causes open to them.
CAUSES_OF = {
    "site": {Cause.CLAIM, Cause.REPORT},
    "user": {Cause.CANCEL},
    "cancel_all": {Cause.CANCEL_ALL},
    "expiry": {Cause.EXPIRE},
}
EXPIRY_MS = 60_000


def allowed(current: str, cause: Cause, new: str) -> bool:
    """The table's answer, read straight from it."""
    return state_of(new) in TRANSITIONS[state_of(current)].get(cause, frozenset())


def make_machine(loop: asyncio.AbstractEventLoop, db: Database) -> type[RuleBasedStateMachine]:
    """The machine, on one database and event loop shared by all its examples: each
    example has a site of its own."""

    class JobStateMachine(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            # Near the real time: the database is shared with the other tests' servers,
            # whose sweepers expire jobs more than a day old by the real clock.
            self.now = int(time.time() * 1000)
            # Two processes on one database: each remembers the jobs it saw, which the
            # other's changes put out of date.
            self.processes = [
                JobService(
                    db,
                    EventLog(db, MemoryBus()),
                    expiry_seconds=EXPIRY_MS / 1000,
                    clock_ms=lambda: self.now,
                )
                for _ in range(2)
            ]
            self.service = self.processes[0]
            self.site = f"sm-{uuid.uuid4().hex[:10]}"
            self.model: dict[str, dict[Queue, str]] = {}
            self.changes: dict[str, int] = {}

        def run(self, coroutine: Any) -> Any:
            return loop.run_until_complete(coroutine)

        def _set(self, ulid: str, queue: Queue, status: str) -> None:
            self.model[ulid][queue] = status
            self.changes[ulid] += 1

        @rule(cancel_all=st.booleans())
        def submit(self, cancel_all: bool) -> None:
            action = CANCEL_ALL_ACTION if cancel_all else "expose"
            submitted = self.run(self.service.submit(new_job(self.site, action=action)))
            changed = set()
            if cancel_all:
                for ulid, queues in self.model.items():
                    for queue, status in queues.items():
                        if allowed(status, Cause.CANCEL_ALL, "CANCELLED"):
                            self._set(ulid, queue, "CANCELLED")
                            changed.add(ulid)
            assert {job.ulid for job in submitted.cancelled} == changed
            self.model[submitted.job.ulid] = {queue: "UNREAD" for queue in Queue}
            self.changes[submitted.job.ulid] = 2

        @rule(
            queue=st.sampled_from(Queue),
            limit=st.none() | st.integers(1, 3),
            process=st.integers(0, 1),
        )
        def claim(self, queue: Queue, limit: int | None, process: int) -> None:
            claimed = self.run(self.processes[process].claim(self.site, queue, limit))
            unread = sorted(
                u for u, q in self.model.items() if allowed(q[queue], Cause.CLAIM, "RECEIVED")
            )
            expected = unread[:limit] if limit else unread
            assert [job.ulid for job in claimed] == expected
            for ulid in expected:
                self._set(ulid, queue, "RECEIVED")

        @precondition(lambda self: self.model)
        @rule(
            data=st.data(),
            queue=st.sampled_from(Queue),
            status=st.sampled_from(REPORTED),
            process=st.integers(0, 1),
        )
        def report(self, data: st.DataObject, queue: Queue, status: str, process: int) -> None:
            service = self.processes[process]
            ulid = data.draw(st.sampled_from(sorted(self.model)))
            current = self.model[ulid][queue]
            normal = NORMAL.get(status, status)
            repeat = normal == current and current in FINAL_STATUSES  # no change at all
            if not repeat and not allowed(current, Cause.REPORT, normal):
                with pytest.raises(Conflict):
                    self.run(service.report_status(self.site, ulid, queue, status))
                return
            job = self.run(service.report_status(self.site, ulid, queue, status))
            assert job.state(queue).status == normal
            assert job == self.run(self.service.find(ulid))[0], "answered is not as stored"
            if not repeat:
                self._set(ulid, queue, normal)

        @precondition(lambda self: self.model)
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            ulid = data.draw(st.sampled_from(sorted(self.model)))
            states = self.model[ulid]
            open_ = {q: s for q, s in states.items() if s not in FINAL_STATUSES}
            unread = [q for q, s in open_.items() if allowed(s, Cause.CANCEL, "CANCELLED")]
            refused = len(unread) < len(open_)
            if refused or (not unread and "CANCELLED" not in states.values()):
                with pytest.raises(Conflict):
                    self.run(self.service.cancel(self.site, ulid, new_job(self.site).user))
                return
            self.run(self.service.cancel(self.site, ulid, new_job(self.site).user))
            for queue in unread:
                self._set(ulid, queue, "CANCELLED")

        @rule(minutes=st.integers(0, 2))
        def time_passes_and_expiry_runs(self, minutes: int) -> None:
            self.now += minutes * 60_000
            # Until nothing old is left, as the sweeper does over its rounds: one call
            # takes the oldest 500 per queue of every site, and the database is shared
            # with other tests, whose unread jobs this clock makes old too.
            while self.run(self.service.expire_stale()):
                pass
            for ulid, queues in self.model.items():
                old = int(self.run(self.service.find(ulid))[0].created_ms) < self.now - EXPIRY_MS
                for queue, status in queues.items():
                    if old and allowed(status, Cause.EXPIRE, "EXPIRED"):
                        self._set(ulid, queue, "EXPIRED")

        @invariant()
        def store_matches_model_and_history_is_complete(self) -> None:
            if not hasattr(self, "service"):
                return
            page = self.run(self.service.page(self.site, limit=1000))
            assert sorted(job.ulid for job in page.jobs) == sorted(self.model)
            for job in page.jobs:
                for queue in Queue:
                    assert job.state(queue).status == self.model[job.ulid][queue]
            # Every job's history in one read (JobService.get reads one job's).
            histories = self.run(
                db.read(lambda conn: {job.ulid: whole_history(conn, job) for job in page.jobs})
            )
            for job in page.jobs:
                history = histories[job.ulid]
                assert len(history) == self.changes[job.ulid], "a change is missing"
                for queue in Queue:
                    steps = [h.status for h in history if h.queue is queue]
                    assert steps[0] == "UNREAD" and "UNREAD" not in steps[1:]
                    assert steps[-1] == job.state(queue).status
                    entries = [h for h in history if h.queue is queue]
                    for before, entry in itertools.pairwise(entries):
                        who = entry.source.split(":")[0]
                        causes = CAUSES_OF[who]
                        assert any(allowed(before.status, c, entry.status) for c in causes), (
                            f"{before.status} -> {entry.status} by {entry.source}"
                        )

    return JobStateMachine


@pytest.mark.slow
def test_job_state_machine(database_url: str) -> None:
    loop = asyncio.new_event_loop()
    db = open_database(database_url)
    try:
        loop.run_until_complete(db.upgrade())
        machine = make_machine(loop, db)
        machine.TestCase.settings = settings(
            max_examples=int(os.environ.get("SM_EXAMPLES", "40")),
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        # Out of coverage's reach (see `run_unmeasured`): hypothesis's engine makes most of
        # the calls, and under the tracer the machine took several times as long.
        run_unmeasured(machine.TestCase().runTest)
    finally:
        loop.run_until_complete(db.close())
        loop.close()
