"""The job state machine, as data: from each state of a queue, which states may follow,
and who may cause each change. docs/state_machine.md says what each state means.

A job has a state on each of its two queues, and each queue follows this table alone.
The site reports free-text statuses; every one that is not named here is RUNNING.
Repeating a final status is no change at all (the site software repeats itself), not
a transition. Pure: no I/O. The store's bulk changes select the rows a cause may leave
from this table too (`leaves`), so the rule is written here once.
"""

from enum import StrEnum

from obsrelay.domain.errors import Conflict


class State(StrEnum):
    """What a queue's status means. RUNNING stands for every status the site makes up."""

    UNREAD = "UNREAD"
    RECEIVED = "RECEIVED"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class Cause(StrEnum):
    """Why a queue's status changes; `CAUSED_BY` says who does it."""

    CLAIM = "claim"  # the site polls, and takes its unread jobs
    REPORT = "report"  # the site reports a status
    CANCEL = "cancel"  # a user cancels one job
    CANCEL_ALL = "cancel_all"  # a user's cancel_all_commands, for the site's earlier jobs
    EXPIRE = "expire"  # the server: unread for longer than OBSRELAY_JOB_EXPIRY


CAUSED_BY = {
    Cause.CLAIM: "site",
    Cause.REPORT: "site",
    Cause.CANCEL: "user",
    Cause.CANCEL_ALL: "user",
    Cause.EXPIRE: "server",
}

FINAL = frozenset({State.COMPLETE, State.FAILED, State.CANCELLED, State.EXPIRED})
# A site may report any status but UNREAD: a delivered job never becomes deliverable again.
_REPORTABLE = frozenset(State) - {State.UNREAD}

TRANSITIONS: dict[State, dict[Cause, frozenset[State]]] = {
    State.UNREAD: {
        Cause.CLAIM: frozenset({State.RECEIVED}),
        # The site has the job (through the other queue, or a listing): it is not
        # delivered again on this queue, since a command must not run twice.
        Cause.REPORT: _REPORTABLE,
        Cause.CANCEL: frozenset({State.CANCELLED}),
        Cause.CANCEL_ALL: frozenset({State.CANCELLED}),
        Cause.EXPIRE: frozenset({State.EXPIRED}),
    },
    State.RECEIVED: {
        Cause.REPORT: _REPORTABLE,
        Cause.CANCEL_ALL: frozenset({State.CANCELLED}),
    },
    State.RUNNING: {
        Cause.REPORT: _REPORTABLE,
        Cause.CANCEL_ALL: frozenset({State.CANCELLED}),
    },
    State.COMPLETE: {},
    State.FAILED: {},
    State.CANCELLED: {},
    State.EXPIRED: {},
}

# Statuses as stored and sent: the names of the states, except RUNNING's free text.
UNREAD, RECEIVED = State.UNREAD.value, State.RECEIVED.value
COMPLETE, FAILED = State.COMPLETE.value, State.FAILED.value
CANCELLED, EXPIRED = State.CANCELLED.value, State.EXPIRED.value
STARTED = "STARTED"  # the usual first report; RUNNING like any other
FINAL_STATUSES = frozenset(state.value for state in FINAL)
NAMED_STATUSES = frozenset(state.value for state in State) - {State.RUNNING.value}


def state_of(status: str) -> State:
    """The state a stored status is in."""
    return State(status) if status in NAMED_STATUSES else State.RUNNING


def is_final(status: str) -> bool:
    return status in FINAL_STATUSES


def leaves(cause: Cause) -> frozenset[State]:
    """The states that `cause` may move a queue out of."""
    return frozenset(state for state, causes in TRANSITIONS.items() if cause in causes)


def may_change(ulid: str, queue: str, current: str, cause: Cause, new: str) -> bool:
    """Whether `cause` may move `queue` of job `ulid` from status `current` to `new`.

    False for a final status reported again (nothing changes); Conflict, with a
    sentence for the person or site that tried, for a change the table does not allow.
    """
    if new == current and is_final(current):
        return False
    if state_of(new) in TRANSITIONS[state_of(current)].get(cause, frozenset()):
        return True
    if is_final(current):
        raise Conflict(
            f"Job {ulid} is already {current} on the {queue} queue; "
            f"a finished job cannot become {new}."
        )
    if cause is Cause.CANCEL:
        raise Conflict(
            f"Job {ulid} was already received by the site ({current} on the {queue} "
            "queue); send a stop command to the device instead."
        )
    raise Conflict(f"Job {ulid} cannot go from {current} to {new} on the {queue} queue.")
