"""Small real HTTP servers on loopback that stand in for outside services in tests:
an OpenID provider's JWKS endpoint, the reservation calendar and an alert webhook."""

import contextlib
import json
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

# (path, body, headers) -> (status, JSON value or bytes)
Handler = Callable[[str, bytes, Mapping[str, str]], tuple[int, Any]]


@contextmanager
def http_server(handle: Handler) -> Iterator[str]:
    """Serves `handle(path, body, headers) -> (status, json or bytes)` on a free port, a
    thread per request; yields its URL."""

    class RequestHandler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, payload = handle(self.path, self.rfile.read(length), dict(self.headers))
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


ISSUER = "https://login.example.org/"
AUDIENCE = "https://api.example.org"
ROLES_CLAIM = "https://photonranch.org/user_metadata"


class Provider:
    """An OpenID provider: sign tokens, publish the JWKS (`fetches` counts its fetches),
    rotate keys, and answer `/userinfo` for the tokens it signed.

    Userinfo answers from `profiles[sub]`; `userinfo_behaviour[sub]` makes it "down"
    (503), "refuse" (401), name "another user", or answer "nonsense" (not JSON), and
    `userinfo_delay[sub]` makes it slow. `userinfo_fetches[sub]` counts the requests.
    """

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.profiles: dict[str, dict[str, Any]] = {}
        self.userinfo_behaviour: dict[str, str] = {}
        self.userinfo_delay: dict[str, float] = {}
        self.userinfo_fetches: dict[str, int] = {}
        self._lock = threading.Lock()
        self.add_rsa("k1")

    def serve(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, Any]:
        if path.startswith("/userinfo"):
            return self.userinfo(headers.get("Authorization", ""))
        self.fetches += 1
        return 200, self.jwks()

    def userinfo(self, authorization: str) -> tuple[int, Any]:
        token = authorization.removeprefix("Bearer ")
        try:
            key = self.keys[jwt.get_unverified_header(token)["kid"]]
            claims = jwt.decode(
                token, key.public_key(), algorithms=["RS256", "ES256"], audience=AUDIENCE
            )
        except (jwt.PyJWTError, KeyError):
            return 401, {"error": "invalid_token"}
        sub = claims["sub"]
        with self._lock:
            self.userinfo_fetches[sub] = self.userinfo_fetches.get(sub, 0) + 1
        time.sleep(self.userinfo_delay.get(sub, 0.0))
        profile = {"sub": sub, **self.profiles.get(sub, {})}
        behaviour = self.userinfo_behaviour.get(sub, "ok")
        if behaviour == "down":
            return 503, {"error": "temporarily_unavailable"}
        if behaviour == "refuse":
            return 401, {"error": "invalid_token"}
        if behaviour == "another user":
            return 200, {**profile, "sub": "auth0|someone-else"}
        if behaviour == "nonsense":
            return 200, b"<html>maintenance</html>"
        return 200, profile

    def add_rsa(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published.append(kid)

    def add_ec(self, kid: str) -> None:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            key = self.keys[kid]
            if isinstance(key, rsa.RSAPrivateKey):
                jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
                jwk["alg"] = "RS256"
            else:
                jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
                jwk["alg"] = "ES256"
            jwk["kid"] = kid
            keys.append(jwk)
        return {"keys": keys}

    def token(self, kid: str = "k1", **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "auth0|ada",
            "name": "Ada Observer",
            "iat": now,
            "exp": now + 600,
            ROLES_CLAIM: {"roles": ["admin"]},
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.keys[kid]
        algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


class FakeCalendar:
    """Answers get-event-at-time from a per-site table; a site may be made slow or broken."""

    def __init__(self) -> None:
        self.holders: dict[str, list[dict[str, str]]] = {}
        self.behaviour: dict[str, str] = {}  # site -> "slow" | "down" | "nonsense"
        self.calls = 0

    def __call__(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, Any]:
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


class WebhookReceiver:
    """An incoming-webhook endpoint (Slack-, Mattermost- or ntfy-like) that records what
    it is sent; it may fail the next few posts (`failures`) or hang (`hang`)."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        self.failures = 0
        self.hang = threading.Event()
        self.posts = 0
        receiver = self

        class RequestHandler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.posts += 1
                while receiver.hang.is_set():
                    time.sleep(0.05)
                status = 200
                if receiver.failures > 0:
                    receiver.failures -= 1
                    status = 500
                else:
                    receiver.received.put((dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/secret-token"

    def json(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next alert sent as JSON."""
        _, body = self.received.get(timeout=timeout)
        alert: dict[str, Any] = json.loads(body)
        return alert

    def nothing_more(self, wait: float) -> None:
        with contextlib.suppress(queue.Empty):
            _, body = self.received.get(timeout=wait)
            raise AssertionError(f"an alert too many: {body!r}")

    def close(self) -> None:
        self.hang.clear()
        self._server.shutdown()
        self._server.server_close()


class TcpProxy:
    """A TCP relay on a free loopback port to a real server, which a test can cut and restore:
    the way to take a real PostgreSQL away from obsrelay without stopping it for others.

    One thread does all the relaying, with a selector. Only that thread ever touches a
    socket: with a thread per direction, one thread could close a socket while another
    was about to use its descriptor, which a new connection may then already have
    received, and bytes went to or came from the wrong connection.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self._down = False
        self._stopping = False
        self._peers: dict[socket.socket, socket.socket] = {}
        self._unsent: dict[socket.socket, bytearray] = {}
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        # Orders from other threads: a callable to run on the relay thread, then an event.
        self._orders: queue.Queue[tuple[Callable[[], None], threading.Event]] = queue.Queue()
        self._wake_read, self._wake_write = socket.socketpair()
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._relay_forever, daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Drops every connection and refuses new ones until `restore`."""
        self._order(self._cut)

    def restore(self) -> None:
        self._order(lambda: setattr(self, "_down", False))

    def close(self) -> None:
        self._order(self._cut)
        self._order(self._stop)
        self._thread.join(5)

    def _order(self, action: Callable[[], None]) -> None:
        """Runs `action` on the relay thread and waits until it has."""
        done = threading.Event()
        self._orders.put((action, done))
        self._wake_write.send(b"x")
        if not done.wait(5):
            raise TimeoutError("the TCP relay did not answer")

    def _cut(self) -> None:
        self._down = True
        while self._peers:
            self._drop(next(iter(self._peers)))

    def _stop(self) -> None:
        self._stopping = True

    def _relay_forever(self) -> None:
        while not self._stopping:
            for key, events in self._selector.select():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._wake_read:
                    self._take_orders()
                elif sock is self._listener:
                    self._accept()
                elif sock in self._peers:  # not dropped earlier in this round
                    if events & selectors.EVENT_WRITE:
                        self._flush(sock)
                    if events & selectors.EVENT_READ and sock in self._peers:
                        self._forward(sock)
        self._selector.close()
        for sock in (self._listener, self._wake_read, self._wake_write):
            sock.close()

    def _take_orders(self) -> None:
        self._wake_read.recv(4096)
        while not self._orders.empty():
            action, done = self._orders.get()
            try:
                action()
            finally:
                done.set()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        if self._down:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        for sock, peer in ((client, upstream), (upstream, client)):
            sock.setblocking(False)
            self._peers[sock] = peer
            self._unsent[sock] = bytearray()
            self._selector.register(sock, selectors.EVENT_READ)

    def _forward(self, source: socket.socket) -> None:
        try:
            data = source.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        sink = self._peers[source]
        if not data:
            # The end of one side: what the other still has to receive goes first.
            with contextlib.suppress(OSError):
                sink.settimeout(1)
                sink.sendall(self._unsent[sink])
            self._drop(source)
            return
        self._unsent[sink] += data
        self._flush(sink)

    def _flush(self, sink: socket.socket) -> None:
        """Sends what `sink` has waiting; waits for room to send the rest."""
        unsent = self._unsent[sink]
        try:
            sent = sink.send(unsent) if unsent else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            self._drop(sink)
            return
        del unsent[:sent]
        self._selector.modify(sink, selectors.EVENT_READ | (selectors.EVENT_WRITE if unsent else 0))

    def _drop(self, sock: socket.socket) -> None:
        """Closes a connection: both its sockets."""
        peer = self._peers[sock]
        for one in (sock, peer):
            del self._peers[one], self._unsent[one]
            self._selector.unregister(one)
            with contextlib.suppress(OSError):
                one.shutdown(socket.SHUT_RDWR)
            one.close()
