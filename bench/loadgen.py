"""A small HTTP/1.1 load generator: keep-alive connections on loopback, latency per request.

Run in its own process so that it does not share a core's event loop with the server:
    python -m bench.loadgen --url http://127.0.0.1:8000/healthz --seconds 5
It prints one JSON object: requests, errors, seconds, rps, p50_ms, p99_ms. With several
`--url`s (the same endpoint on several server processes), the connections are spread
over them in turn.
"""

import argparse
import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit


def build_request(
    method: str, host: str, path: str, body: bytes, headers: tuple[str, ...] = ()
) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    head += "".join(f"{header}\r\n" for header in headers)
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    host: str, port: int, request: bytes, deadline: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            latencies.append(time.perf_counter() - started)
            if status >= 400:
                errors.append(status)
    finally:
        writer.close()


def _target(url: str, method: str, body: bytes, headers: tuple[str, ...]) -> tuple[str, int, bytes]:
    """(host, port, the request's bytes) for `url`."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return host, port, build_request(method, f"{host}:{port}", path, body, headers)


async def run(
    urls: list[str],
    method: str,
    body: bytes,
    connections: int,
    seconds: float,
    headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    targets = [_target(url, method, body, headers) for url in urls]
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _connection(*targets[number % len(targets)], deadline, latencies, errors)
            for number in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    return {
        "requests": len(latencies),
        "errors": len(errors),
        "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(0.50), 2),
        "p99_ms": round(percentile(0.99), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, action="append")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="", help="The raw body; no Content-Type is sent.")
    parser.add_argument(
        "--header", action="append", default=[], help="A header to send, as 'Name: value'."
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    result = asyncio.run(
        run(
            args.url,
            args.method,
            args.body.encode(),
            args.connections,
            args.seconds,
            tuple(args.header),
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
