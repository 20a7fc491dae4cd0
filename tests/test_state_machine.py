"""Property-based test of the job state machine on a real store (SQLite and PostgreSQL).

Random sequences of submissions (some of them `cancel_all_commands`), claims, status
reports and cancels on both queues are run against JobService and against a
dictionary model. After every step the store must match the model, no queue may be in
an invalid state, and every change must be in the history.
"""

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from obsrelay.bus import MemoryBus
from obsrelay.domain.errors import Conflict
from obsrelay.domain.jobs import CANCEL_ALL_ACTION, FINAL_STATUSES, Queue
from obsrelay.services.jobs import JobService
from obsrelay.services.stream import EventLog
from obsrelay.store.database import open_database
from tests.helpers import new_job

REPORTED = ["STARTED", "EXPOSING", "complete", "COMPLETED", "FAILED", "cancelled", "slewing"]
NORMAL = {
    "complete": "COMPLETE",
    "COMPLETED": "COMPLETE",
    "cancelled": "CANCELLED",
    "slewing": "SLEWING",
}


def make_machine(database_url: str) -> type[RuleBasedStateMachine]:
    class JobStateMachine(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.loop = asyncio.new_event_loop()
            self.db = open_database(database_url)
            self.run(self.db.upgrade())
            self.service = JobService(self.db, EventLog(self.db, MemoryBus()))
            self.site = f"sm-{uuid.uuid4().hex[:10]}"
            self.model: dict[str, dict[Queue, str]] = {}
            self.changes: dict[str, int] = {}

        def teardown(self) -> None:
            if hasattr(self, "db"):
                self.run(self.db.close())
                self.loop.close()

        def run(self, coroutine: Any) -> Any:
            return self.loop.run_until_complete(coroutine)

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
                        if status not in FINAL_STATUSES:
                            self._set(ulid, queue, "CANCELLED")
                            changed.add(ulid)
            assert {job.ulid for job in submitted.cancelled} == changed
            self.model[submitted.job.ulid] = {queue: "UNREAD" for queue in Queue}
            self.changes[submitted.job.ulid] = 2

        @rule(queue=st.sampled_from(Queue), limit=st.none() | st.integers(1, 3))
        def claim(self, queue: Queue, limit: int | None) -> None:
            claimed = self.run(self.service.claim(self.site, queue, limit))
            unread = sorted(u for u, q in self.model.items() if q[queue] == "UNREAD")
            expected = unread[:limit] if limit else unread
            assert [job.ulid for job in claimed] == expected
            for ulid in expected:
                self._set(ulid, queue, "RECEIVED")

        @precondition(lambda self: self.model)
        @rule(data=st.data(), queue=st.sampled_from(Queue), status=st.sampled_from(REPORTED))
        def report(self, data: st.DataObject, queue: Queue, status: str) -> None:
            ulid = data.draw(st.sampled_from(sorted(self.model)))
            current = self.model[ulid][queue]
            normal = NORMAL.get(status, status)
            if current in FINAL_STATUSES and normal != current:
                with pytest.raises(Conflict):
                    self.run(self.service.report_status(self.site, ulid, queue, status))
                return
            job = self.run(self.service.report_status(self.site, ulid, queue, status))
            assert job.state(queue).status == normal
            if current != normal or current not in FINAL_STATUSES:
                self._set(ulid, queue, normal)

        @precondition(lambda self: self.model)
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            ulid = data.draw(st.sampled_from(sorted(self.model)))
            states = self.model[ulid]
            received = any(s != "UNREAD" and s not in FINAL_STATUSES for s in states.values())
            unread = [q for q, s in states.items() if s == "UNREAD"]
            if received or (not unread and "CANCELLED" not in states.values()):
                with pytest.raises(Conflict):
                    self.run(self.service.cancel(self.site, ulid, new_job(self.site).user))
                return
            self.run(self.service.cancel(self.site, ulid, new_job(self.site).user))
            for queue in unread:
                self._set(ulid, queue, "CANCELLED")

        @invariant()
        def store_matches_model_and_history_is_complete(self) -> None:
            if not hasattr(self, "service"):
                return
            page = self.run(self.service.page(self.site, limit=1000))
            assert sorted(job.ulid for job in page.jobs) == sorted(self.model)
            for job in page.jobs:
                for queue in Queue:
                    assert job.state(queue).status == self.model[job.ulid][queue]
                _, history = self.run(self.service.get(self.site, job.ulid))
                assert len(history) == self.changes[job.ulid], "a change is missing"
                for queue in Queue:
                    steps = [h.status for h in history if h.queue is queue]
                    assert steps[0] == "UNREAD" and "UNREAD" not in steps[1:]
                    assert steps[-1] == job.state(queue).status
                    finals = [i for i, s in enumerate(steps) if s in FINAL_STATUSES]
                    assert not finals or finals[0] == len(steps) - 1, "a final status changed"

    return JobStateMachine


def test_job_state_machine(database_url: str) -> None:
    machine = make_machine(database_url)
    machine.TestCase.settings = settings(
        max_examples=40,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()
