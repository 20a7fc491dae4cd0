"""Benchmark of the job queue's hot endpoints against the HTTP stack's own ceiling.

Starts a real obsrelay process on a fresh database, stores 100,000 finished jobs at
the polled site, then drives each endpoint from a load generator in another process:

    python -m bench.jobs                               # SQLite (the default backend)
    python -m bench.jobs --postgres postgresql://postgres@127.0.0.1:5432/test

It prints requests per second and p50/p99 latency for `newjob`, an empty `getnewjobs`
poll (also as a site with a key polls, sending it on every call) and /healthz, and each
one's ratio to the ceiling measured in the same run: a bare
FastAPI app on the same uvicorn (bench/echo.py) whose `POST /echo` parses a small JSON
body and answers a small JSON object. The endpoints take turns over several rounds,
and the medians are reported. The server runs with raised rate limits and no user
checks (tests/servers.py TEST_SETTINGS): one load generator is one client address.
Targets (issue 14): on PostgreSQL newjob >= 0.30 x echo and an empty getnewjobs >= 0.50
x echo; on SQLite 0.40 and 0.60.

With `--baseline DIR` (another checkout, e.g. a `git worktree` of an earlier commit,
with its own `.venv`), that checkout's server takes its turns in the same rounds, and
each endpoint is also given as a ratio to it.

With `--processes 2 --redis URL` (and `--postgres`), two server processes of this
checkout share the database and a Redis bus, and take the load together (the load
generator spreads its connections over them), beside the one process in the same
rounds: target (issue 14), two give at least the throughput of one.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.servers import ServerProcess, start_server

from bench import SMOKE_NOTE, add_smoke_flag
from bench.scratch import drop_database, new_database
from obsrelay.domain.ids import MonotonicUlids
from obsrelay.store.database import open_database
from obsrelay.store.schema import job_history, jobs

POLLED_SITE = "bench-poll"
NEW_SITE = "bench-new"
KEYED_SITE = "bench-keyed"
ECHO = "POST /echo (bare FastAPI)"
SEVERAL = "several processes"  # the label of --processes' servers
NEWJOB = "POST /jobs/newjob"
EMPTY_POLL = "POST /jobs/getnewjobs (empty)"
KEYED_POLL = "  the same, with the site's key"
# Each endpoint's target as a ratio of the echo ceiling, per backend (issue 14).
TARGETS = {
    "PostgreSQL": {NEWJOB: 0.30, EMPTY_POLL: 0.50},
    "SQLite": {NEWJOB: 0.40, EMPTY_POLL: 0.60},
}


async def seed_finished_jobs(database_url: str, count: int) -> None:
    """Stores `count` COMPLETE jobs (with their history) at the polled site."""
    db = open_database(database_url)
    await db.upgrade()
    ulids = MonotonicUlids()
    now = int(time.time() * 1000) - count
    try:
        for start in range(0, count, 5000):
            rows, history = [], []
            for i in range(start, min(count, start + 5000)):
                ulid = ulids.new(now + i)
                rows.append(
                    {
                        "ulid": ulid,
                        "site": POLLED_SITE,
                        "created_ms": now + i,
                        "device_type": "camera",
                        "device_instance": "camera1",
                        "action": "expose",
                        "required_params": {"time": 1},
                        "optional_params": {},
                        "user_id": "bench",
                        "user_name": "bench",
                        "user_roles": [],
                        "primary_status": "COMPLETE",
                        "primary_seconds": -1,
                        "primary_updated_ms": now + i,
                        "alternate_status": "COMPLETE",
                        "alternate_seconds": -1,
                        "alternate_updated_ms": now + i,
                    }
                )
                for status in ("RECEIVED", "COMPLETE"):
                    history.append(
                        {
                            "job_ulid": ulid,
                            "at_ms": now + i,
                            "queue": "primary",
                            "status": status,
                            "seconds_until_complete": -1,
                            "source": "bench",
                        }
                    )

            def store(conn, rows=rows, history=history):
                conn.execute(jobs.insert(), rows)
                conn.execute(job_history.insert(), history)

            await db.write(store)
    finally:
        await db.close()


def load(
    url: str | list[str],
    method: str,
    body: str,
    connections: int,
    seconds: float,
    headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One load generator's figures for `url` (or for the same endpoint on several servers,
    the connections spread over them)."""
    urls = [url] if isinstance(url, str) else url
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            *(part for each in urls for part in ("--url", each)),
            "--method",
            method,
            "--body",
            body,
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
            *(part for header in headers for part in ("--header", header)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


Scenario = tuple[str, str, str, str, tuple[str, ...]]  # name, method, path, body, headers


def _scenarios(site_key: str) -> list[Scenario]:
    """The endpoints measured; `site_key` is KEYED_SITE's key in the server's database."""
    newjob_body = json.dumps(
        {
            "site": NEW_SITE,
            "device": "camera",
            "instance": "camera1",
            "action": "expose",
            "required_params": {"time": "30"},
            "optional_params": {"filter": "R"},
            "user_name": "Bench",
            "user_id": "bench",
        }
    )
    return [
        ("GET /healthz", "GET", "/healthz", "", ()),
        (NEWJOB, "POST", "/jobs/newjob", newjob_body, ()),
        (EMPTY_POLL, "POST", "/jobs/getnewjobs", json.dumps({"site": POLLED_SITE}), ()),
        # The secure default: a site with a key sends it on every call.
        (
            KEYED_POLL,
            "POST",
            "/jobs/getnewjobs",
            json.dumps({"site": KEYED_SITE}),
            (f"X-Site-Key: {site_key}",),
        ),
    ]


ECHO_BODY = json.dumps({"site": POLLED_SITE, "device": "camera", "action": "expose"})


def _urls(processes: list[ServerProcess], path: str) -> list[str]:
    return [server.url + path for server in processes]


def _medians(runs: list[dict[str, Any]]) -> tuple[float, float, float, int]:
    return (
        statistics.median(r["rps"] for r in runs),
        statistics.median(r["p50_ms"] for r in runs),
        statistics.median(r["p99_ms"] for r in runs),
        sum(r["errors"] for r in runs),
    )


def _print_table(
    title: str, rounds: dict[str, list[dict[str, Any]]], echo: list[dict[str, Any]], backend: str
) -> None:
    print(f"\n{title}")
    print(f"{'endpoint':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'x echo':>8}")
    for name, runs in {ECHO: echo, **rounds}.items():
        ratio = statistics.median(r["rps"] / e["rps"] for r, e in zip(runs, echo, strict=True))
        target = TARGETS[backend].get(name)
        verdict = "" if target is None else "  ok" if ratio >= target else f"  BELOW {target}"
        rps, p50, p99, errors = _medians(runs)
        print(f"{name:32} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f} {errors:>7} {ratio:>8.2f}{verdict}")


def _fresh_database(
    args: argparse.Namespace, workdir: Path, checkout: Path
) -> tuple[str, str | None, str]:
    """(URL, scratch PostgreSQL database to drop, KEYED_SITE's key) of a new database,
    made, seeded and given its sites and key by `checkout`'s own code, so that its
    schema is that checkout's."""
    url, scratch = new_database(args.postgres, workdir)
    python = str(checkout / ".venv" / "bin" / "python")
    seed = (
        "import asyncio, sys; from bench.jobs import seed_finished_jobs; "
        "asyncio.run(seed_finished_jobs(sys.argv[1], int(sys.argv[2])))"
    )
    subprocess.run([python, "-c", seed, url, str(args.finished_jobs)], cwd=checkout, check=True)
    env = {**os.environ, "OBSRELAY_DATABASE_URL": url}
    for site in (POLLED_SITE, NEW_SITE):
        subprocess.run(
            [python, "-m", "obsrelay", "sites", "add", site],
            cwd=checkout,
            env=env,
            check=True,
            capture_output=True,
        )
    added = subprocess.run(
        [python, "-m", "obsrelay", "sites", "add-key", KEYED_SITE],
        cwd=checkout,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return url, scratch, added.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", help="An admin URL; a fresh database is made on it.")
    parser.add_argument("--finished-jobs", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="Another checkout, with its own .venv (make .venv/.installed): its server "
        "is measured in the same rounds, and each endpoint compared with it.",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="With more than 1 (and --postgres, --redis): that many server processes of "
        "this checkout on one database, the connections spread over them, measured beside "
        "the one process in the same rounds.",
    )
    parser.add_argument("--redis", help="The bus of this checkout's servers (a Redis URL).")
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        print(SMOKE_NOTE)
        args.finished_jobs, args.rounds, args.seconds = 500, 1, 0.3
    if args.processes > 1 and not (args.postgres and args.redis):
        parser.error("several processes share PostgreSQL and a Redis bus: give both")
    bus = {"OBSRELAY_BUS_URL": args.redis} if args.redis else {}

    workdir = Path(tempfile.mkdtemp(prefix="obsrelay-bench-"))
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"backend: {backend}; seeding {args.finished_jobs} finished jobs ...", flush=True)
    print(
        "servers: no user checks and rate limits raised (tests/servers.py TEST_SETTINGS): "
        "the load generator is one client address",
        flush=True,
    )
    checkouts = {"this checkout": Path(__file__).resolve().parent.parent}
    if args.processes > 1:
        checkouts[SEVERAL] = checkouts["this checkout"]
    if args.baseline:
        checkouts["baseline"] = args.baseline.resolve()
    scratch: list[str] = []
    servers: dict[str, list[ServerProcess]] = {}
    scenarios: dict[str, list[Scenario]] = {}  # by server: each has its own site key
    servers_to_stop: list[ServerProcess] = []
    try:
        for label, checkout in checkouts.items():
            url, scratch_db, site_key = _fresh_database(args, workdir, checkout)
            scratch += [scratch_db] if scratch_db else []
            scenarios[label] = _scenarios(site_key)
            python = str(checkout / ".venv" / "bin" / "python")
            count = args.processes if label == SEVERAL else 1
            servers[label] = [
                start_server(url, workdir, python=python, measured=False, **bus)
                for _ in range(count)
            ]
        echo_server = start_server(
            None,
            workdir,
            ["-m", "bench.echo", "--port", "{port}"],
            measured=False,
            PYTHONPATH=str(checkouts["this checkout"]),
        )
        servers_to_stop.append(echo_server)
        echo_url = echo_server.url + "/echo"
        echo_rounds: list[dict[str, Any]] = []
        names = [name for name, *_ in scenarios["this checkout"]]
        # Interleaved rounds, each endpoint (and each server) in turn, so that a machine
        # whose speed drifts (shared cores) affects all alike; medians are reported.
        rounds: dict[str, dict[str, list[dict[str, Any]]]] = {
            label: {name: [] for name in names} for label in servers
        }
        warm_up = min(1.0, args.seconds)
        load(echo_url, "POST", ECHO_BODY, args.connections, warm_up)
        for label, processes in servers.items():
            for _, method, path, body, headers in scenarios[label]:
                load(_urls(processes, path), method, body, args.connections, warm_up, headers)
        for number in range(args.rounds):
            echo_rounds.append(load(echo_url, "POST", ECHO_BODY, args.connections, args.seconds))
            # Each round the servers take their turns in the other order: a server that
            # goes first (a write-heavy turn after another's) is not always the same one.
            turns = list(servers.items())[:: -1 if number % 2 else 1]
            for index, name in enumerate(names):
                for label, processes in turns:
                    _, method, path, body, headers = scenarios[label][index]
                    urls = _urls(processes, path)
                    rounds[label][name].append(
                        load(urls, method, body, args.connections, args.seconds, headers)
                    )
    finally:
        for server in [*(one for each in servers.values() for one in each), *servers_to_stop]:
            server.stop()
        for name in scratch:
            drop_database(args.postgres, name)

    setup = (
        f"{backend}, {args.finished_jobs} finished jobs stored, {args.connections} "
        f"connections, {args.rounds} interleaved rounds of {args.seconds:g} s (medians)"
    )
    for label in servers:
        _print_table(f"{label}: {setup}", rounds[label], echo_rounds, backend)
    failed = sum(
        run["errors"] for each in rounds.values() for runs in each.values() for run in runs
    )
    if failed:  # the figures are of refusals, not of the endpoints
        raise SystemExit(f"{failed} requests were answered with an error; see the tables above")
    for label, title in (
        (SEVERAL, f"{args.processes} processes / 1 process"),
        ("baseline", f"this checkout / baseline ({args.baseline})"),
    ):
        if label not in rounds:
            continue
        print(f"\n{title}, per round, medians:")
        print(f"{'endpoint':32} {'req/s':>9} {'p50':>8} {'p99':>8}")
        for name in names:
            pairs = list(zip(rounds[label][name], rounds["this checkout"][name], strict=True))
            if label == "baseline":
                pairs = [(ours, theirs) for theirs, ours in pairs]
            print(
                f"{name:32} "
                + " ".join(
                    f"{statistics.median(a[key] / b[key] for a, b in pairs):>8.2f}x"
                    for key in ("rps", "p50_ms", "p99_ms")
                )
            )


if __name__ == "__main__":
    main()
