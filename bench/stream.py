"""Benchmark of the datastream: one site, 1,000 websocket subscribers, one publisher.

    python -m bench.stream [--subscribers 1000] [--seconds 5] [--rates 100,500]

Starts a real obsrelay process (SQLite, memory bus), connects the subscribers from
another process (bench/subscribers.py), and posts user status messages through
/logs/newlog at each rate, paced, from this process. The subscribers share one client
address, so the server's cap on datastream sockets per address is raised to let them
all in (and its rate limits, as in tests/servers.py); the run says so. For each rate it prints the
frames delivered per second, p50/p99 latency from post to receipt, and how many
frames were lost; then it raises the rate until something is lost and reports the
highest rate at which nothing was.

Target (issue 3): p99 under 100 ms at 100 messages per second to 1,000 subscribers.
"""

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.servers import start_server

from bench import SMOKE_NOTE, add_smoke_flag
from bench.loadgen import _read_response, build_request

SITE = "bench-stream"


async def publish(url: str, rate: float, seconds: float, tag: str) -> int:
    """Posts `rate` messages a second for `seconds`, then END; returns how many it posted."""
    host, port = url.removeprefix("http://").split(":")
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(8)]
    free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for connection in connections:
        free.put_nowait(connection)

    async def post(text: str) -> None:
        reader, writer = await free.get()
        body = json.dumps({"site": SITE, "log_message": text, "log_level": "info"}).encode()
        writer.write(build_request("POST", f"{host}:{port}", "/logs/newlog", body))
        status = await _read_response(reader)
        free.put_nowait((reader, writer))
        if status != 200:
            raise RuntimeError(f"newlog answered {status}")

    total = int(rate * seconds)
    started = time.monotonic()
    pending = []
    for i in range(total):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(post(f"{tag} {i} t={time.time_ns()} ")))
    await asyncio.gather(*pending)
    await post("t=END ")
    for _, writer in connections:
        writer.close()
    return total


def measure(server_url: str, subscribers: int, rate: float, seconds: float) -> dict[str, Any]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.subscribers",
            "--url",
            server_url,
            "--site",
            SITE,
            "--connections",
            str(subscribers),
            "--deadline",
            str(seconds + 60),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError("the subscribers did not connect")
    time.sleep(0.5)
    started = time.monotonic()
    posted = asyncio.run(publish(server_url, rate, seconds, f"r{rate}"))
    out, _ = process.communicate(timeout=seconds + 90)
    elapsed = time.monotonic() - started
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    received = sum(result["received"])
    result.update(
        rate=rate,
        posted=posted,
        lost=posted * subscribers - received,
        delivered_per_s=received / elapsed,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="100,500", help="Rates to report, messages/s.")
    parser.add_argument(
        "--search",
        default="200,300,400,600,800,1000",
        help="Further rates tried, in order, until one loses frames.",
    )
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        print(SMOKE_NOTE)
        args.subscribers, args.seconds, args.rates, args.search = 20, 0.5, "50", ""

    workdir = Path(tempfile.mkdtemp(prefix="obsrelay-stream-"))
    # The subscribers connect from one address: let them all in, and a few more.
    sockets = args.subscribers + 16
    print(
        f"server: SQLite, memory bus, rate limits raised, max_sockets_per_client={sockets} "
        "(the subscribers share one client address)",
        flush=True,
    )
    server = start_server(
        f"sqlite:///{workdir / 'stream.db'}",
        workdir,
        measured=False,
        OBSRELAY_MAX_SOCKETS_PER_CLIENT=str(sockets),
    )
    results = []
    try:
        rates = [float(r) for r in args.rates.split(",")]
        search = [float(r) for r in args.search.split(",") if r]
        for rate in sorted(set(rates + search)):
            result = measure(server.url, args.subscribers, rate, args.seconds)
            results.append(result)
            print(
                f"  {rate:>6.0f} msg/s: p99 {result['p99_ms']:.1f} ms, lost {result['lost']}",
                flush=True,
            )
            if rate not in rates and result["lost"]:
                break
    finally:
        server.stop()

    print(
        f"\n{args.subscribers} subscribers on one site, one server process (SQLite), "
        f"{args.seconds:g} s per rate\n"
    )
    print(f"{'msg/s':>7} {'frames/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'lost':>8} {'closed':>7}")
    for r in results:
        print(
            f"{r['rate']:>7.0f} {r['delivered_per_s']:>10.0f} {r['p50_ms'] or 0:>8.1f} "
            f"{r['p99_ms'] or 0:>8.1f} {r['lost']:>8} {r['closed_1013']:>7}"
        )
    lossless = [r["rate"] for r in results if r["lost"] == 0]
    print(f"\nhighest rate with nothing lost: {max(lossless) if lossless else 0:.0f} msg/s")
    at_100 = next((r for r in results if r["rate"] == 100), None)
    if at_100:
        verdict = "ok" if at_100["p99_ms"] < 100 and not at_100["lost"] else "MISSED"
        print(f"target p99 < 100 ms at 100 msg/s: {at_100['p99_ms']:.1f} ms, {verdict}")


if __name__ == "__main__":
    main()
