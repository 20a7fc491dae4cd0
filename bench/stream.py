"""Benchmark of the datastream: one site, 1,000 websocket subscribers, one publisher,
beside the websocket stack's own ceiling in the same run.

    python -m bench.stream [--subscribers 1000] [--seconds 5] [--rates 100,500]
    python -m bench.stream --postgres URL --redis URL --processes 2   # and two processes
    python -m bench.stream --baseline DIR                   # and another checkout's server

Starts a real obsrelay process (SQLite and the memory bus, or a fresh database on
`--postgres`), connects the subscribers from another process (bench/subscribers.py),
and posts user status messages through /logs/newlog at each rate, paced, from this
process. At each rate the same is done, in turn, to:
- the ceiling: a bare broadcast server on the same websocket stack with no obsrelay
  logic (bench/broadcast.py), which shows what the machine and the load generator
  cost; once sending each post at once, and once paced as obsrelay paces a site's
  stream under load (`--batch-ms`, obsrelay's OBSRELAY_STREAM_BATCH_MS);
- with `--processes N` (and `--postgres`, `--redis`): N obsrelay processes on that
  database and a Redis bus, the subscribers and the posts spread over them;
- with `--baseline DIR`: another checkout's server (with its own .venv).

The subscribers share one client address, so each obsrelay server's cap on datastream
sockets per address is raised to let them all in (and its rate limits, as in
tests/servers.py); the run says so. For each rate and server it prints the frames
delivered per second, p50/p99 latency from post to receipt, how many frames were lost
and how many subscribers were closed as too slow; then it raises the rate on this
checkout until something is lost and reports the highest rate at which nothing was.

Targets: p99 under 100 ms at 100 messages/s (issue 3) and at 500 messages/s (issue 15)
to 1,000 subscribers, from one process, with nothing lost.
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

from tests.servers import ServerProcess, start_server

from bench import SMOKE_NOTE, add_smoke_flag
from bench.loadgen import _read_response, build_request
from bench.scratch import drop_database, new_database

SITE = "bench-stream"
CEILING = "ceiling, sent at once"
HELD_CEILING = "ceiling, held like obsrelay"
THIS = "this checkout"
BASELINE = "baseline"
# The publisher's connections: enough that a post never waits for a free one at 500/s
# when the server takes 50 ms to answer (PostgreSQL under load). With 8, the posts
# queued in the publisher and their wait was counted as the stream's latency.
PUBLISHERS = 32
# Each target: (rate in messages/s, p99 in ms) with nothing lost, from one process.
TARGETS = ((100.0, 100.0), (500.0, 100.0))


async def publish(urls: list[str], rate: float, seconds: float, tag: str) -> int:
    """Posts `rate` messages a second for `seconds`, then END; returns how many it posted.

    Its PUBLISHERS connections are spread over `urls` in turn. END is posted after
    every other post was answered: it is the last event of the site's stream on every
    server.
    """
    connections = []
    for number in range(PUBLISHERS):
        host, port = urls[number % len(urls)].removeprefix("http://").split(":")
        connections.append((f"{host}:{port}", *await asyncio.open_connection(host, int(port))))
    free: asyncio.Queue[tuple[str, asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for connection in connections:
        free.put_nowait(connection)

    async def post(text: str, connection: Any = None) -> None:
        host, reader, writer = connection or await free.get()
        body = json.dumps({"site": SITE, "log_message": text, "log_level": "info"}).encode()
        writer.write(build_request("POST", host, "/logs/newlog", body))
        status = await _read_response(reader)
        if connection is None:
            free.put_nowait((host, reader, writer))
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
    await post("t=END ", connections[0])
    for _, _, writer in connections:
        writer.close()
    return total


def measure(urls: list[str], subscribers: int, rate: float, seconds: float) -> dict[str, Any]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.subscribers",
            *(arg for url in urls for arg in ("--url", url)),
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
    posted = asyncio.run(publish(urls, rate, seconds, f"r{rate}"))
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


def _start_servers(
    args: argparse.Namespace, workdir: Path, scratch: list[str]
) -> dict[str, list[ServerProcess]]:
    """The servers measured, by label; the ceiling first."""
    here = Path(__file__).resolve().parent.parent
    sockets = args.subscribers + 16
    backend = "PostgreSQL" if args.postgres else "SQLite"
    bus = "Redis bus" if args.redis else "memory bus"
    print(
        f"obsrelay servers: {backend}, {bus}, rate limits raised, max_sockets_per_client={sockets} "
        f"(the subscribers share one client address), stream_batch_ms={args.batch_ms}",
        flush=True,
    )
    servers: dict[str, list[ServerProcess]] = {}
    for label, hold_ms in ((CEILING, 0), (HELD_CEILING, args.batch_ms)):
        command = ["-m", "bench.broadcast", "--port", "{port}", "--hold-ms", str(hold_ms)]
        servers[label] = [
            start_server(None, workdir, command, measured=False, PYTHONPATH=str(here))
        ]

    def obsrelay(checkout: Path, count: int, bus: str | None = None) -> list[ServerProcess]:
        url, name = new_database(args.postgres, workdir)
        if name:
            scratch.append(name)
        python = str(checkout / ".venv" / "bin" / "python")
        env: dict[str, Any] = {
            "OBSRELAY_MAX_SOCKETS_PER_CLIENT": str(sockets),
            "OBSRELAY_STREAM_BATCH_MS": str(args.batch_ms),
        }
        if bus:
            env["OBSRELAY_BUS_URL"] = bus
        return [
            start_server(url, workdir, python=python, measured=False, **env) for _ in range(count)
        ]

    # With --redis, the one process uses the same bus as the several: only their number differs.
    servers[THIS] = obsrelay(here, 1, args.redis)
    if args.processes > 1:
        servers[f"{args.processes} processes"] = obsrelay(here, args.processes, args.redis)
    if args.baseline:
        servers[BASELINE] = obsrelay(args.baseline.resolve(), 1, args.redis)
    return servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="100,500", help="Rates to report, messages/s.")
    parser.add_argument(
        "--search",
        default="200,300,400,600,800,1000",
        help="Further rates tried on this checkout, in order, until one loses frames.",
    )
    parser.add_argument(
        "--batch-ms",
        type=int,
        default=40,
        help="obsrelay's OBSRELAY_STREAM_BATCH_MS, and the held ceiling's pace.",
    )
    parser.add_argument("--postgres", help="An admin URL; a fresh database is made on it.")
    parser.add_argument("--redis", help="The bus of --processes' servers (a Redis URL).")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="With more than 1 (and --postgres, --redis): that many processes of this "
        "checkout, sharing the subscribers, measured beside the one process.",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="Another checkout, with its own .venv (make .venv/.installed): its server is "
        "measured in the same run.",
    )
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.processes > 1 and not (args.postgres and args.redis):
        parser.error("several processes share PostgreSQL and a Redis bus: give both")
    if args.smoke:
        print(SMOKE_NOTE)
        args.subscribers, args.seconds, args.rates, args.search = 20, 0.5, "50", ""

    workdir = Path(tempfile.mkdtemp(prefix="obsrelay-stream-"))
    scratch: list[str] = []
    servers: dict[str, list[ServerProcess]] = {}
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        servers = _start_servers(args, workdir, scratch)
        results = {label: [] for label in servers}
        rates = [float(r) for r in args.rates.split(",")]
        search = [float(r) for r in args.search.split(",") if r]
        for rate in sorted(set(rates + search)):
            for label, processes in servers.items():
                if rate not in rates and label != THIS:
                    continue
                result = measure([s.url for s in processes], args.subscribers, rate, args.seconds)
                results[label].append(result)
                print(
                    f"  {label:>26}, {rate:>5.0f} msg/s: p99 {result['p99_ms'] or 0:.1f} ms, "
                    f"lost {result['lost']}",
                    flush=True,
                )
            if rate not in rates and results[THIS][-1]["lost"]:
                break
    finally:
        for server in (one for each in servers.values() for one in each):
            server.stop()
        for name in scratch:
            drop_database(args.postgres, name)

    backend = "PostgreSQL" if args.postgres else "SQLite"
    for label, runs in results.items():
        print(
            f"\n{label}: {args.subscribers} subscribers on one site, "
            f"{'no store' if label in (CEILING, HELD_CEILING) else backend}, "
            f"{args.seconds:g} s per rate"
        )
        print(
            f"{'msg/s':>7} {'frames/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'lost':>8} {'closed':>7}"
        )
        for r in runs:
            print(
                f"{r['rate']:>7.0f} {r['delivered_per_s']:>10.0f} {r['p50_ms'] or 0:>8.1f} "
                f"{r['p99_ms'] or 0:>8.1f} {r['lost']:>8} {r['closed_1013']:>7}"
            )
    lossless = [r["rate"] for r in results.get(THIS, []) if r["lost"] == 0]
    print(f"\nthis checkout's highest rate with nothing lost: {max(lossless, default=0):.0f} msg/s")
    print("\np99 per rate, and as a multiple of the held ceiling's:")
    for rate in rates:
        row = {label: next(r for r in runs if r["rate"] == rate) for label, runs in results.items()}
        ceiling = row[HELD_CEILING]["p99_ms"] or 0
        figures = []
        for label, r in row.items():
            p99 = r["p99_ms"] or 0
            times = f" ({p99 / ceiling:.2f}x)" if label != HELD_CEILING and ceiling else ""
            figures.append(f"{label} {p99:.1f} ms{times}")
        print(f"  {rate:>5.0f} msg/s: " + ", ".join(figures))
    for rate, p99 in TARGETS:
        measured = [r for r in results.get(THIS, []) if r["rate"] == rate]
        for r in measured:
            verdict = "ok" if (r["p99_ms"] or 0) < p99 and not r["lost"] else "MISSED"
            print(f"target p99 < {p99:.0f} ms at {rate:.0f} msg/s: {r['p99_ms']:.1f} ms, {verdict}")


if __name__ == "__main__":
    main()
