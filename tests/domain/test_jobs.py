"""The pure rules: names, statuses, seconds, transitions, ULIDs."""

import dataclasses
from dataclasses import MISSING

import pytest

from obsrelay.domain.errors import Conflict, InvalidInput
from obsrelay.domain.ids import MonotonicUlids, ulid_floor
from obsrelay.domain.jobs import (
    UNKNOWN_SECONDS,
    Identity,
    Job,
    Queue,
    QueueState,
    normalize_seconds,
    normalize_status,
    queues_to_cancel,
    validate_site,
)
from obsrelay.domain.lifecycle import Cause, may_change


@pytest.mark.parametrize("name", ["mrc1", "mrc", "saf-2", "tst_x", "a.b", "A" * 64])
def test_valid_sites(name):
    assert validate_site(name) == name


@pytest.mark.parametrize("name", ["", "a b", "a/b", "é", "x" * 65, None, 5, ["mrc1"]])
def test_invalid_sites(name):
    with pytest.raises(InvalidInput):
        validate_site(name)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("started", "STARTED"),
        (" Exposing ", "EXPOSING"),
        ("COMPLETED", "COMPLETE"),
        ("complete", "COMPLETE"),
        ("canceled", "CANCELLED"),
        ("FAILED", "FAILED"),
        ("waiting for dome", "WAITING FOR DOME"),
    ],
)
def test_status_normalization(raw, status):
    assert normalize_status(raw) == status


@pytest.mark.parametrize("raw", ["", "   ", "unread", None, 3, "x" * 65, "<b>"])
def test_bad_statuses(raw):
    with pytest.raises(InvalidInput):
        normalize_status(raw)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(None, -1), ("", -1), (5, 5), (5.9, 5), ("12", 12), (" 7.5 ", 7), (-1, -1), (-30, -1)],
)
def test_seconds_until_complete(raw, seconds):
    assert normalize_seconds(raw) == seconds


@pytest.mark.parametrize("raw", [True, "soon", [1], {"s": 1}, float("nan"), 10**12])
def test_bad_seconds(raw):
    with pytest.raises(InvalidInput):
        normalize_seconds(raw)


def test_final_status_is_final():
    report = Cause.REPORT
    assert may_change("J", Queue.PRIMARY, "RECEIVED", report, "STARTED")
    assert may_change("J", Queue.PRIMARY, "STARTED", report, "COMPLETE")
    assert not may_change("J", Queue.PRIMARY, "COMPLETE", report, "COMPLETE")
    for final in ("COMPLETE", "FAILED", "CANCELLED", "EXPIRED"):
        with pytest.raises(Conflict, match="finished job cannot become STARTED"):
            may_change("J", Queue.PRIMARY, final, report, "STARTED")
    with pytest.raises(Conflict, match="send a stop command"):
        may_change("J", Queue.PRIMARY, "EXPOSING", Cause.CANCEL, "CANCELLED")
    with pytest.raises(Conflict, match="cannot go from EXPOSING to EXPIRED"):
        may_change("J", Queue.PRIMARY, "EXPOSING", Cause.EXPIRE, "EXPIRED")


def _job(primary: str, alternate: str) -> Job:
    return Job(
        "J",
        "s",
        0,
        "camera",
        "camera1",
        "expose",
        {},
        {},
        Identity("u", "u"),
        QueueState(primary, UNKNOWN_SECONDS, 0),
        QueueState(alternate, UNKNOWN_SECONDS, 0),
    )


def test_cancel_rules():
    assert queues_to_cancel(_job("UNREAD", "UNREAD")) == [Queue.PRIMARY, Queue.ALTERNATE]
    assert queues_to_cancel(_job("COMPLETE", "UNREAD")) == [Queue.ALTERNATE]
    assert queues_to_cancel(_job("CANCELLED", "CANCELLED")) == []
    for primary, alternate in (("RECEIVED", "UNREAD"), ("UNREAD", "EXPOSING")):
        with pytest.raises(Conflict, match="stop command"):
            queues_to_cancel(_job(primary, alternate))
    with pytest.raises(Conflict, match="already finished"):
        queues_to_cancel(_job("COMPLETE", "EXPIRED"))


def test_a_job_with_a_new_state_changes_that_queue_and_nothing_else():
    job = _job("RECEIVED", "UNREAD")
    state = QueueState("EXPOSING", 30, 1_700_000_000_123)
    assert job.with_state(Queue.PRIMARY, state) == dataclasses.replace(job, primary=state)
    assert job.with_state(Queue.ALTERNATE, state) == dataclasses.replace(job, alternate=state)
    assert job == _job("RECEIVED", "UNREAD")  # the job itself is as it was
    # with_state names every field: one added with a default would be reset silently.
    defaulted = [
        field.name
        for field in dataclasses.fields(Job)
        if field.default is not MISSING or field.default_factory is not MISSING
    ]
    assert not defaulted, f"with_state must copy {defaulted}"


def test_ulids_increase_within_one_millisecond():
    ulids = MonotonicUlids()
    made = [ulids.new(1_700_000_000_000) for _ in range(1000)]
    assert made == sorted(made) and len(set(made)) == 1000
    assert ulids.new(1_700_000_000_001) > made[-1]
    assert ulids.new(1_600_000_000_000) > made[-1]  # the clock stepping back changes nothing
    assert ulid_floor(1_700_000_000_000) <= made[0] < ulid_floor(1_700_000_000_001)
