"""Small real HTTP servers on loopback that stand in for outside services in tests:
an OpenID provider's JWKS endpoint and the reservation calendar."""

import json
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
