"""Benchmark: what an idle connection costs the server in memory.

    python -m bench.idle [--counts 1000,5000] [--postgres URL] [--baseline DIR]

Observatory networks leave consoles open all night, and every site holds a long-poll.
For each count and each kind of connection, a fresh obsrelay process (SQLite and the
memory bus, or a fresh database on `--postgres`) is started and warmed up (a few
sockets and long-polls opened and closed); then this process opens that many
connections and holds them:
- datastream sockets: websockets to /datastream, on `--sites` sites in turn, idle;
- long-polls: `getnewjobs` with wait=25 on `--sites` registered sites without jobs.

The server's resident memory (VmRSS, /proc/PID/status) is read before and once
/metrics counts every connection open (or waiting) and a second has passed; the figure
per connection is the difference divided by the count. The server's caps on sockets
and long-polls per client address are raised to let one client hold them all; the run
says so. Target (issue 15): at most 50 KiB per idle socket.
"""

import argparse
import asyncio
import base64
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.servers import ServerProcess, start_server

from bench import SMOKE_NOTE, add_smoke_flag
from bench.scratch import drop_database, new_database

SOCKETS = "datastream sockets"
LONG_POLLS = "long-polls"
GAUGES = {SOCKETS: "obsrelay_stream_sockets", LONG_POLLS: "obsrelay_longpolls_waiting"}
TARGET_KIB = {SOCKETS: 50.0}
# Connections are opened this many at a time: the listen backlog stays short.
_AT_ONCE = 200


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def _request(kind: str, host: str, site: str) -> bytes:
    if kind == SOCKETS:
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET /datastream?site={site} HTTP/1.1\r\nHost: {host}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    body = f'{{"site":"{site}","wait":25}}'.encode()
    return (
        f"POST /jobs/getnewjobs HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _open(
    url: str, kind: str, sites: list[str], count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Opens `count` connections of `kind`, spread over `sites`; a socket is returned
    once its handshake is answered, a long-poll once its request is sent."""
    host = url.removeprefix("http://")
    address, port = host.split(":")

    async def one(number: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(address, int(port))
        writer.write(_request(kind, host, sites[number % len(sites)]))
        if kind == SOCKETS:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"the datastream refused a socket: {head[:60]!r}")
        return reader, writer

    connections = []
    for start in range(0, count, _AT_ONCE):
        batch = range(start, min(count, start + _AT_ONCE))
        connections += await asyncio.gather(*(one(n) for n in batch))
    return connections


async def _gauge(server: ServerProcess, name: str) -> float:
    reader, writer = await asyncio.open_connection(*server.url.removeprefix("http://").split(":"))
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    text = (await reader.read()).decode()
    writer.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise RuntimeError(f"/metrics has no {name}")


async def _hold(server: ServerProcess, kind: str, sites: list[str], count: int) -> int:
    """Opens `count` connections, waits until the server counts them all, and returns
    its resident memory then (KiB); closes them after."""
    connections = await _open(server.url, kind, sites, count)
    try:
        deadline = time.monotonic() + 20
        while await _gauge(server, GAUGES[kind]) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not count {count} {kind} within 20 s")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        resident = resident_kib(server.process.pid)
        if await _gauge(server, GAUGES[kind]) < count:
            raise RuntimeError(f"some {kind} ended before the measurement")
        return resident
    finally:
        for _, writer in connections:
            writer.close()


def measure(
    args: argparse.Namespace, workdir: Path, checkout: Path, kind: str, count: int
) -> dict[str, Any]:
    """A fresh server of `checkout`, warmed up, then `count` connections of `kind` held."""
    url, scratch = new_database(args.postgres, workdir)
    sites = [f"idle-{n}" for n in range(args.sites)]
    python = str(checkout / ".venv" / "bin" / "python")
    # By the checkout's own code, so that the schema is that checkout's.
    register = "import sys; from tests.servers import register_site; register_site(*sys.argv[1:])"
    subprocess.run([python, "-c", register, url, *sites], cwd=checkout, check=True)
    server = start_server(
        url,
        workdir,
        python=python,
        measured=False,
        OBSRELAY_MAX_SOCKETS_PER_CLIENT=str(count + 16),
        OBSRELAY_MAX_WAITING_PER_CLIENT=str(count + 16),
        OBSRELAY_MAX_WAITING=str(count + 16),
    )
    try:
        # Warm up: the first connection of each kind imports and allocates what every
        # later one shares.
        asyncio.run(_hold(server, kind, sites, min(count, 20)))
        time.sleep(0.5)
        before = resident_kib(server.process.pid)
        after = asyncio.run(_hold(server, kind, sites, count))
    finally:
        server.stop()
        if scratch:
            drop_database(args.postgres, scratch)
    return {
        "kind": kind,
        "count": count,
        "before_kib": before,
        "after_kib": after,
        "per_kib": (after - before) / count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1000,5000")
    parser.add_argument("--sites", type=int, default=100, help="Sites the connections spread over.")
    parser.add_argument("--postgres", help="An admin URL; a fresh database is made on it.")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="Another checkout, with its own .venv (make .venv/.installed): its server is "
        "measured the same way, after this checkout's.",
    )
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        print(SMOKE_NOTE)
        args.counts, args.sites = "50", 5
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"server: {backend}, memory bus; max_sockets_per_client, max_waiting_per_client and "
        "max_waiting raised to each count + 16 (one client holds them all)",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="obsrelay-idle-"))
    checkouts = {"this checkout": Path(__file__).resolve().parent.parent}
    if args.baseline:
        checkouts["baseline"] = args.baseline.resolve()
    results = []
    for label, checkout in checkouts.items():
        for kind in (SOCKETS, LONG_POLLS):
            for count in (int(c) for c in args.counts.split(",")):
                result = {"label": label, **measure(args, workdir, checkout, kind, count)}
                results.append(result)
                print(f"  {label}, {kind}, {count}: {result['per_kib']:.1f} KiB each", flush=True)

    print(f"\nserver resident memory, {backend}, connections spread over {args.sites} sites\n")
    print(
        f"{'server':14} {'connections':20} {'count':>6} {'before KiB':>11} {'after KiB':>10} "
        f"{'KiB each':>9}"
    )
    for r in results:
        print(
            f"{r['label']:14} {r['kind']:20} {r['count']:>6} {r['before_kib']:>11} "
            f"{r['after_kib']:>10} {r['per_kib']:>9.1f}"
        )
    ours = [r for r in results if r["label"] == "this checkout"]
    for kind, target in TARGET_KIB.items():
        worst = max(r["per_kib"] for r in ours if r["kind"] == kind)
        verdict = "ok" if worst <= target else "MISSED"
        print(f"target <= {target:.0f} KiB per idle {kind[:-1]}: worst {worst:.1f} KiB, {verdict}")


if __name__ == "__main__":
    main()
