"""Benchmark of the job queue's hot endpoints against the same server's /healthz.

Starts a real obsrelay process on a fresh database, stores 100,000 finished jobs at
the polled site, then drives each endpoint from a load generator in another process:

    python -m bench.jobs                               # SQLite (the default backend)
    python -m bench.jobs --postgres postgresql://postgres@127.0.0.1:5432/test

It prints requests per second and p50/p99 latency for /healthz, `newjob` and an empty
`getnewjobs` poll, and each one's ratio to /healthz measured in the same run: the
endpoints take turns over several rounds, and the medians are reported.
Targets (issue 2): newjob >= 0.30 x healthz; empty getnewjobs >= 0.30 x healthz.
"""

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from tests.servers import _admin, start_server

from obsrelay.domain.ids import MonotonicUlids
from obsrelay.store.database import open_database
from obsrelay.store.schema import job_history, jobs

POLLED_SITE = "bench-poll"
NEW_SITE = "bench-new"
TARGET_RATIO = 0.30


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


def load(url: str, method: str, body: str, connections: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--url",
            url,
            "--method",
            method,
            "--body",
            body,
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", help="An admin URL; a fresh database is made on it.")
    parser.add_argument("--finished-jobs", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="obsrelay-bench-"))
    scratch_db = None
    if args.postgres:
        scratch_db = f"obsrelay_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(_admin(args.postgres, f'CREATE DATABASE "{scratch_db}"'))
        database_url = make_url(args.postgres).set(database=scratch_db).render_as_string(False)
    else:
        database_url = f"sqlite:///{workdir / 'bench.db'}"
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"backend: {backend}; seeding {args.finished_jobs} finished jobs ...", flush=True)
    asyncio.run(seed_finished_jobs(database_url, args.finished_jobs))
    server = start_server(database_url, workdir)
    try:
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
        scenarios = [
            ("GET /healthz", "GET", "/healthz", ""),
            ("POST /jobs/newjob", "POST", "/jobs/newjob", newjob_body),
            (
                "POST /jobs/getnewjobs (empty)",
                "POST",
                "/jobs/getnewjobs",
                json.dumps({"site": POLLED_SITE}),
            ),
        ]
        # Interleaved rounds, each endpoint in turn, so that a machine whose speed
        # drifts (shared cores) affects every endpoint alike; medians are reported.
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in scenarios}
        for _, method, path, body in scenarios:
            load(server.url + path, method, body, args.connections, 1.0)  # warm up
        for _ in range(args.rounds):
            for name, method, path, body in scenarios:
                rounds[name].append(
                    load(server.url + path, method, body, args.connections, args.seconds)
                )
    finally:
        server.stop()
        if scratch_db:
            asyncio.run(
                _admin(args.postgres, f'DROP DATABASE IF EXISTS "{scratch_db}" WITH (FORCE)')
            )

    base_rounds = rounds["GET /healthz"]
    print(
        f"\n{backend}, {args.finished_jobs} finished jobs stored, {args.connections} "
        f"connections, {args.rounds} interleaved rounds of {args.seconds:.0f} s (medians)\n"
    )
    print(
        f"{'endpoint':32} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'x healthz':>10}"
    )
    for name, runs in rounds.items():
        ratio = statistics.median(
            r["rps"] / b["rps"] for r, b in zip(runs, base_rounds, strict=True)
        )
        verdict = ""
        if not name.startswith("GET"):
            verdict = "  ok" if ratio >= TARGET_RATIO else f"  BELOW {TARGET_RATIO}"
        print(
            f"{name:32} {statistics.median(r['rps'] for r in runs):>9.0f} "
            f"{statistics.median(r['p50_ms'] for r in runs):>8.2f} "
            f"{statistics.median(r['p99_ms'] for r in runs):>8.2f} "
            f"{sum(r['errors'] for r in runs):>7} {ratio:>10.2f}{verdict}"
        )


if __name__ == "__main__":
    main()
