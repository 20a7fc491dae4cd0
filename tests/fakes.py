"""Small real HTTP servers on loopback that stand in for outside services in tests:
an OpenID provider's JWKS endpoint and the reservation calendar."""

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = Callable[[str, bytes], tuple[int, Any]]


@contextmanager
def http_server(handle: Handler) -> Iterator[str]:
    """Serves `handle(path, body) -> (status, json or bytes)` on a free port; yields its URL."""

    class RequestHandler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, payload = handle(self.path, self.rfile.read(length))
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class FakeCalendar:
    """Answers get-event-at-time from a per-site table; a site may be made slow or broken."""

    def __init__(self) -> None:
        self.holders: dict[str, list[dict[str, str]]] = {}
        self.behaviour: dict[str, str] = {}  # site -> "slow" | "down" | "nonsense"
        self.calls = 0

    def __call__(self, path: str, body: bytes) -> tuple[int, Any]:
        self.calls += 1
        request = json.loads(body)
        site = request["site"]
        assert path.endswith("/get-event-at-time") and request["time"].endswith("Z")
        behaviour = self.behaviour.get(site)
        if behaviour == "slow":
            time.sleep(4)
        if behaviour == "down":
            return 500, {"error": "calendar broke"}
        if behaviour == "nonsense":
            return 200, {"events": "maybe"}
        return 200, [
            {"creator_id": h["id"], "creator": h["name"], "start": "x", "end": "y"}
            for h in self.holders.get(site, [])
        ]


class TcpProxy:
    """A TCP relay on a free loopback port to a real server, which a test can cut and restore:
    the way to take a real PostgreSQL away from obsrelay without stopping it for others."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._down = False
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept_forever, daemon=True).start()

    def cut(self) -> None:
        """Drops every connection and refuses new ones until `restore`."""
        with self._lock:
            self._down = True
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def restore(self) -> None:
        with self._lock:
            self._down = False

    def _accept_forever(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._down:
                    client.close()
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self.cut()
        self._listener.close()
