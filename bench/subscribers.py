"""Many websocket subscribers in one process, cheap enough to keep up with a busy stream.

A plain asyncio Protocol per connection: the websockets library costs too much per
frame for 1,000 connections. Each message's text carries the publisher's
`time.time_ns()` after "t=". Every connection counts its frames by that marker
without parsing; one connection in `--sample` parses every frame (server frames
are unmasked text) and records latency, receipt minus that stamp. With several
`--url`s the connections are spread over them in turn. Run by bench/stream.py; prints
one JSON summary when every connection has seen the message "END" (or the deadline
passes).
"""

import argparse
import asyncio
import base64
import functools
import json
import os
import time
from typing import Any
from urllib.parse import urlsplit

import uvloop


class Subscriber(asyncio.Protocol):
    def __init__(
        self, handshake: bytes, latencies: list[int], done: asyncio.Event, sampled: bool
    ) -> None:
        self.handshake = handshake
        self.sampled = sampled
        self.latencies = latencies
        self.done = done
        self.buffer = bytearray()
        self.tail = b""
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.received = 0
        self.finished = False
        self.closed_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.handshake)  # type: ignore[attr-defined]  # a TCP transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(RuntimeError(bytes(self.buffer[:60]).decode()))
                return
            del self.buffer[: end + 4]
            self.upgraded = True
            self.ready.set_result(None)
        if not self.sampled:
            self._count(bytes(self.buffer))
            self.buffer.clear()
            return
        now = time.time_ns()
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode, length, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            if opcode == 0x8:
                self.closed_code = int.from_bytes(payload[:2], "big") if payload else 1005
                continue
            if opcode != 0x1:
                continue
            mark = payload.find(b"t=")
            if mark < 0:
                continue
            stamp = payload[mark + 2 : payload.find(b" ", mark)]
            if stamp == b"END":
                self.finished = True
                self.done.set()
                continue
            self.received += 1
            self.latencies.append(now - int(stamp))

    def _count(self, data: bytes) -> None:
        # Markers starting before `cut` are counted now; the last bytes wait for the next
        # read, so that a marker split across two reads is counted once.
        data = self.tail + data
        cut = max(0, len(data) - 8)
        self.received += data.count(b"t=", 0, cut + 1) - data.count(b"t=END", 0, cut + 4)
        self.tail = data[cut:]
        if b"t=END" in data:
            self.finished = True
            self.done.set()
        if b"\x88\x02\x03\xf5" in data:
            self.closed_code = 1013


async def run(
    urls: list[str], site: str, connections: int, deadline: float, sample: int
) -> dict[str, Any]:
    """Connects `connections` subscribers, spread over `urls` in turn, and counts."""
    loop = asyncio.get_running_loop()
    latencies: list[int] = []
    done = asyncio.Event()
    subscribers: list[Subscriber] = []
    for number in range(connections):
        parts = urlsplit(urls[number % len(urls)])
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        key = base64.b64encode(os.urandom(16)).decode()
        handshake = (
            f"GET /datastream?site={site} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        _, protocol = await loop.create_connection(
            functools.partial(Subscriber, handshake, latencies, done, number % sample == 0),
            host,
            port,
        )
        subscribers.append(protocol)
    await asyncio.gather(*(s.ready for s in subscribers))
    print("ready", flush=True)
    end = time.monotonic() + deadline
    while time.monotonic() < end and not all(s.finished for s in subscribers):
        done.clear()
        try:
            await asyncio.wait_for(done.wait(), max(0.01, end - time.monotonic()))
        except TimeoutError:
            break
    return {
        "received": [s.received for s in subscribers],
        "finished": sum(s.finished for s in subscribers),
        "closed_1013": sum(s.closed_code == 1013 for s in subscribers),
        "latencies_ns": sorted(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--url", action="append", required=True, help="A server; several share the subscribers."
    )
    parser.add_argument("--site", required=True)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--sample", type=int, default=10, help="Parse every Nth connection.")
    args = parser.parse_args()
    # uvloop, as the server runs: the default loop costs about twice as much per read.
    result = uvloop.run(run(args.url, args.site, args.connections, args.deadline, args.sample))
    latencies = result.pop("latencies_ns")
    count = len(latencies)
    result["p50_ms"] = latencies[count // 2] / 1e6 if count else None
    result["p99_ms"] = latencies[min(count - 1, int(count * 0.99))] / 1e6 if count else None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
