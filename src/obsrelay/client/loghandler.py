"""ObsrelayLogHandler: the site's Python log records, shipped as user status messages.

    handler = ObsrelayLogHandler("https://relay.example.org", "mrc1", key="ork_...")
    handler.setLevel(logging.INFO)
    logging.getLogger("observatory").addHandler(handler)

`emit` only formats the record and puts it in a bounded buffer: it never waits for
the network. One background thread sends what is buffered, up to 100 records per
request. While the server is unreachable the buffer fills; records that find it full
are dropped and counted in `dropped`, and when the server is back a warning message
says how many were lost.
"""

import contextlib
import logging
import queue
import threading
import time

from obsrelay.client import _http
from obsrelay.client.errors import ObsrelayError, RateLimited, RequestRejected
from obsrelay.client.site import SiteClient

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}
# The server refuses messages over 16 KiB; a long traceback is cut to fit.
MAX_TEXT = 16000
BATCH = 100
# The client's own logs would come back here and be sent again, forever.
_OWN_LOGGERS = ("httpx", "httpcore", "obsrelay.client")


def level_name(levelno: int) -> str:
    """The message level for a logging level (custom levels round down)."""
    for number in sorted(_LEVELS, reverse=True):
        if levelno >= number:
            return _LEVELS[number]
    return "debug"


class ObsrelayLogHandler(logging.Handler):
    """A logging.Handler that never blocks the caller; see the module docstring."""

    def __init__(
        self,
        server: str,
        site: str,
        key: str | None = None,
        *,
        level: int = logging.NOTSET,
        capacity: int = 10_000,
        flush_interval: float = 0.5,
    ) -> None:
        super().__init__(level)
        self._client = SiteClient(server, site, key, retry_seconds=0)
        self._buffer: queue.Queue[tuple[str, str, float]] = queue.Queue(capacity)
        self._flush_interval = flush_interval
        self._dropped = 0
        self._dropped_reported = 0
        self._count_lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = threading.Event()
        self._sender = threading.Thread(
            target=self._send_forever, name=f"obsrelay-log-{site}", daemon=True
        )
        self._sender.start()

    @property
    def dropped(self) -> int:
        """Records dropped because the buffer was full (the server was unreachable)."""
        return self._dropped

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread() is self._sender or record.name.startswith(_OWN_LOGGERS):
            return
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        if len(text) > MAX_TEXT:
            text = text[: MAX_TEXT - 1] + "…"
        try:
            self._idle.clear()
            self._buffer.put_nowait((text, level_name(record.levelno), record.created))
        except queue.Full:
            with self._count_lock:
                self._dropped += 1

    def flush(self) -> None:
        """Waits (at most 5 s) until everything buffered was sent."""
        self.wait_sent(5.0)

    def wait_sent(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds until everything buffered was sent; says if it was."""
        deadline = time.monotonic() + timeout
        while not self._buffer.empty() or not self._idle.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._sender.is_alive():
                return False
            self._idle.wait(min(remaining, 0.05))
        return True

    def close(self) -> None:
        """Sends what is buffered (waiting at most 5 s), then stops the sender."""
        self.wait_sent(5.0)
        self._stopping.set()
        self._sender.join(2.0)
        self._client.close()
        super().close()

    def _take_batch(self) -> list[tuple[str, str, float]]:
        try:
            batch = [self._buffer.get(timeout=self._flush_interval)]
        except queue.Empty:
            return []
        while len(batch) < BATCH:
            try:
                batch.append(self._buffer.get_nowait())
            except queue.Empty:
                break
        return batch

    def _send_forever(self) -> None:
        backoff = _http.Backoff(0.5, 15.0)
        batch: list[tuple[str, str, float]] = []
        while not self._stopping.is_set():
            if not batch:
                batch = self._take_batch()
                if not batch:
                    if self._buffer.empty():
                        self._idle.set()
                    continue
            try:
                self._client.post_messages(list(batch))
            except RateLimited as error:
                self._stopping.wait(error.retry_after)
                continue
            except RequestRejected:
                # The server will never take this batch (a bad key, say): not retried.
                with self._count_lock:
                    self._dropped += len(batch)
            except ObsrelayError:
                self._stopping.wait(backoff.next())
                continue  # the same batch again: nothing sent is lost
            batch = []
            backoff.reset()
            self._report_drops()

    def _report_drops(self) -> None:
        with self._count_lock:
            lost = self._dropped - self._dropped_reported
            self._dropped_reported = self._dropped
        if lost:
            text = f"{lost} log messages were dropped while the obsrelay server was unreachable."
            with contextlib.suppress(ObsrelayError):
                self._client.post_messages([(text, "warning", time.time())])
