"""A stream connection's bookkeeping (api/streaming.py `Connection`), in this process:
what it writes of the Hub's batches while it replays, after, and when it falls behind.

The socket is a recorder of what would be written; the batches are the Hub's own
(`Rendered`). The same paths run end to end in tests/api/compat/test_datastream.py,
against a server process.
"""

from typing import Any, cast

from obsrelay.api.streaming import CLOSE_TRY_AGAIN_LATER, Connection, StreamCounters
from obsrelay.metrics import Metrics
from obsrelay.services.stream import Rendered, StreamEvent

SITE = "mrc1"


class _Socket:
    """What a FrameWriter would have written, one entry per write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.waiting = 0  # bytes written but not read by the client

    def write(self, frames: list[bytes], joined: bytes | None = None) -> bool:
        self.writes.append(joined if joined is not None else b"".join(frames))
        return True

    def buffered(self) -> int:
        return self.waiting

    async def wait_writable(self) -> None:
        self.waiting = 0

    def close(self) -> None:
        pass


def _render(event: StreamEvent) -> bytes:
    return f"<{event.seq if event.seq is not None else event.topic}>".encode()


def _events(*seqs: int, site: str = SITE) -> list[StreamEvent]:
    return [StreamEvent(site, "message", "{}", seq) for seq in seqs]


def _connection(max_buffer: int = 1000) -> tuple[Connection, _Socket]:
    socket = _Socket()
    counters = StreamCounters.of(Metrics(), "test")
    websocket = cast(Any, None)  # only read by the receiving task, which is not run here
    return Connection(websocket, SITE, _render, socket, max_buffer, counters), socket


def _batch(*seqs: int, site: str = SITE) -> Rendered:
    return Rendered.of(site, _events(*seqs, site=site), _render)


async def test_batches_that_come_during_a_replay_add_only_what_it_did_not_give():
    connection, socket = _connection()
    connection.replaying = True
    connection.offer(_batch(5, 6, 7))  # committed while the replay read the store
    assert socket.writes == []  # held until the replay ends
    for event in _events(1, 2, 3, 4, 5, 6):
        await connection.replay(event, _render(event))
    connection.end_replay()
    assert b"".join(socket.writes) == b"<1><2><3><4><5><6><7>"
    assert connection.cursor == 7
    # Past the replay, a batch goes out whole, in one write.
    connection.offer(_batch(8, 9))
    assert socket.writes[-1] == b"<8><9>"
    assert connection.cursor == 9


async def test_a_batch_it_already_has_part_of_adds_the_rest_and_live_events():
    connection, socket = _connection()
    connection.cursor = 4
    live = StreamEvent(SITE, "sitestatus", "{}")
    connection.offer(Rendered.of(SITE, [*_events(3, 4, 5), live], _render))
    assert socket.writes == [b"<5><sitestatus>"]
    assert connection.cursor == 5


def test_another_sites_batch_is_not_written():
    connection, socket = _connection()
    connection.offer(_batch(1, 2, site="other"))
    assert socket.writes == [] and connection.cursor == 0


def test_a_client_that_falls_behind_is_closed_to_try_again_later():
    connection, socket = _connection(max_buffer=100)
    socket.waiting = 101
    connection.offer(_batch(1))
    assert socket.writes == []
    assert connection.ended.is_set() and connection.close_code == CLOSE_TRY_AGAIN_LATER


def test_a_replay_that_holds_too_much_live_closes_the_client():
    connection, _ = _connection(max_buffer=10)
    connection.replaying = True
    connection.offer(_batch(1, 2, 3, 4))  # 12 bytes held
    assert connection.ended.is_set() and connection.close_code == CLOSE_TRY_AGAIN_LATER
