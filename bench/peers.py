"""obsrelay's job queue beside a queue peer, PgQueuer, on one PostgreSQL server, in one run.

    python -m bench.peers --postgres postgresql://postgres@127.0.0.1:5432/test

Both are measured at the service level, without HTTP, each on a fresh database made
on that server. The rounds alternate between them, and the report gives the median.

- **Submit / enqueue.** There are `--callers` concurrent callers (default 16), each
  adding one job at a time for `--seconds`.
  - obsrelay: `JobService.submit`, which writes the job, its stream event and the
    site's stream head in one transaction.
  - PgQueuer: `Queries.enqueue` of one job, on a pool of as many connections.
- **Claim + complete / dequeue + done.** Each drains `--jobs` jobs queued beforehand,
  with `--callers` consumers (the same concurrency on both sides, as issue 14 asks).
  - obsrelay: `--callers` site workers. Each one claims up to `--batch` jobs
    (`JobService.claim`), then reports COMPLETE for each job
    (`JobService.report_status`), as the site software does.
  - PgQueuer: `--callers` consumers, each a `QueueManager` on a connection of its own
    (as each of as many worker processes would run one), with a no-op entrypoint, in
    drain mode, with batch `--batch`. Each logs the jobs done in a buffer, flushed by
    batch.
  - For reference, PgQueuer also drains with one consumer: its best figure here (its
    16 consumers contend for the same rows; obsrelay's workers share one process's
    claims, ADR 0009). That line is printed beside the others and is not a target.

The payload is the same on both sides: an obsrelay job's fields (device, action,
parameters, user), about 200 bytes of JSON.

Beside each ratio of the medians (the verdict), the ratio of each round is printed:
the two peers of a round run within seconds of each other, and the spread of those
ratios shows how much the machine's speed moved the figures.

Before each drain both databases are vacuumed (`VACUUM ANALYZE`), so that each drain
starts from a queue in the state autovacuum keeps it in. Without it (`--no-vacuum`)
each round drains past the dead rows that the rounds before left in the tables and
their indexes; both peers then got slower round after round, PgQueuer the most (its
drain from about 7,500 to 2,000 jobs/s in three rounds), and the medians said more
about autovacuum's timing than about either queue.

obsrelay uses the memory bus here: the figures are the store's. `--sites N` spreads
the obsrelay jobs over N sites (default 1: one site, like PgQueuer's one queue, which
is the hardest case for the per-site stream numbering). The targets (issue 14) are
obsrelay >= 1.0x PgQueuer for both.
"""

import argparse
import asyncio
import itertools
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from sqlalchemy.engine import make_url

from bench import SMOKE_NOTE, add_smoke_flag
from bench.scratch import (
    create_postgres_database,
    drop_postgres_database,
    vacuum_postgres_database,
)
from obsrelay.bus import open_bus
from obsrelay.domain.jobs import Identity, NewJob, Queue
from obsrelay.services.jobs import JobService
from obsrelay.services.stream import EventLog
from obsrelay.store.database import open_database

TARGET_RATIO = 1.0
FIELDS: dict[str, Any] = {
    "device_type": "camera",
    "device_instance": "camera1",
    "action": "expose",
    "required_params": {"time": "30", "count": "1"},
    "optional_params": {"filter": "R", "bin": "1"},
}
USER = Identity("bench-user", "Bench User", ("observer",))
PAYLOAD = json.dumps({**FIELDS, "user": USER.user_id, "site": "bench-0"}).encode()


def new_job(site: str) -> NewJob:
    return NewJob(site=site, user=USER, **FIELDS)


async def for_seconds(callers: int, seconds: float, call: Callable[[int], Awaitable[None]]) -> int:
    """Runs `call(caller)` in a loop on each of `callers` tasks for `seconds`; returns
    how many calls ended in that time."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def caller(number: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call(number)
            done += 1

    await asyncio.gather(*(caller(number) for number in range(callers)))
    return done


class Obsrelay:
    """obsrelay's JobService on PostgreSQL, with the memory bus."""

    def __init__(self, url: str, sites: int) -> None:
        self.db = open_database(url)
        self.sites = [f"bench-{number}" for number in range(sites)]
        self.jobs = JobService(self.db, EventLog(self.db, open_bus("memory://")))

    async def start(self) -> None:
        await self.db.upgrade()

    async def close(self) -> None:
        await self.db.close()

    def site_of(self, caller: int) -> str:
        return self.sites[caller % len(self.sites)]

    async def submit(self, caller: int) -> None:
        await self.jobs.submit(new_job(self.site_of(caller)))

    async def fill(self, count: int) -> None:
        sites = itertools.cycle(self.sites)
        for start in range(0, count, 100):
            await asyncio.gather(
                *(self.jobs.submit(new_job(next(sites))) for _ in range(min(100, count - start)))
            )

    async def drain(self, callers: int, batch: int) -> int:
        """Claims and completes every unread job; returns how many."""
        done = 0

        async def worker(number: int) -> None:
            nonlocal done
            site = self.site_of(number)
            while claimed := await self.jobs.claim(site, Queue.PRIMARY, limit=batch):
                for job in claimed:
                    await self.jobs.report_status(site, job.ulid, Queue.PRIMARY, "COMPLETE")
                done += len(claimed)

        await asyncio.gather(*(worker(number) for number in range(callers)))
        return done


class PgQueuer:
    """PgQueuer 1.6 on asyncpg: its own schema, in a database of its own."""

    def __init__(self, url: str, callers: int) -> None:
        self.url = make_url(url).set(drivername="postgresql").render_as_string(False)
        self.callers = callers

    async def start(self) -> None:
        import asyncpg
        from pgqueuer.queries import Queries

        self.pool = await asyncpg.create_pool(
            self.url, min_size=self.callers, max_size=self.callers
        )
        self.queries = Queries.from_asyncpg_pool(self.pool)
        await self.queries.install()

    async def close(self) -> None:
        await self.pool.close()

    async def submit(self, caller: int) -> None:
        await self.queries.enqueue("bench", PAYLOAD)

    async def fill(self, count: int) -> None:
        for start in range(0, count, 1000):
            size = min(1000, count - start)
            await self.queries.enqueue(["bench"] * size, [PAYLOAD] * size, [0] * size)

    async def drain(self, callers: int, batch: int) -> int:
        """`callers` consumers drain the queue together; returns how many jobs they did."""
        import asyncpg
        from pgqueuer import QueueManager
        from pgqueuer.queries import Queries
        from pgqueuer.types import QueueExecutionMode

        done = 0

        async def consumer(connection: asyncpg.Connection) -> None:
            manager = QueueManager(Queries.from_asyncpg_connection(connection))

            @manager.entrypoint("bench")
            async def work(job: object) -> None:
                nonlocal done
                done += 1

            await manager.run(batch_size=batch, mode=QueueExecutionMode.drain)

        connections = [await asyncpg.connect(self.url) for _ in range(callers)]
        try:
            await asyncio.gather(*(consumer(connection) for connection in connections))
        finally:
            for connection in connections:
                await connection.close()
        return done


async def measure(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    made: list[str] = []
    peers: dict[str, Any] = {}
    urls: dict[str, str] = {}
    try:
        for label in ("obsrelay", "PgQueuer"):
            url, name = await create_postgres_database(args.postgres)
            made.append(name)
            peer = Obsrelay(url, args.sites) if label == "obsrelay" else PgQueuer(url, args.callers)
            await peer.start()
            peers[label], urls[label] = peer, url
        # Each drain: its key in `rates` and how many consumers it has.
        drains = {
            "obsrelay": [("drain", args.callers)],
            "PgQueuer": [("drain", args.callers), ("drain_one", 1)],
        }
        rates: dict[str, dict[str, list[float]]] = {
            label: {"submit": [], "drain": [], "drain_one": []} for label in peers
        }
        for _ in range(args.rounds):
            for label, peer in peers.items():
                count = await for_seconds(args.callers, args.seconds, peer.submit)
                rates[label]["submit"].append(count / args.seconds)
                print(f"  {label}: {count / args.seconds:,.0f} submits/s", flush=True)
                await peer.drain(args.callers, args.batch)  # what the submits left
                for kind, consumers in drains[label]:
                    await peer.fill(args.jobs)
                    if args.vacuum:
                        await vacuum_postgres_database(urls[label])
                    started = time.perf_counter()
                    drained = await peer.drain(consumers, args.batch)
                    rate = drained / (time.perf_counter() - started)
                    if drained < args.jobs:
                        raise SystemExit(f"{label} drained {drained} of {args.jobs} jobs")
                    rates[label][kind].append(rate)
                    print(
                        f"  {label}, {consumers} consumer(s): {rate:,.0f} jobs claimed and "
                        "completed/s",
                        flush=True,
                    )
        return rates
    finally:
        for peer in peers.values():
            await peer.close()
        for name in made:
            await drop_postgres_database(args.postgres, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", required=True, help="An admin URL; scratch databases on it.")
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--sites", type=int, default=1)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--jobs", type=int, default=5000, help="Jobs drained per round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-vacuum",
        dest="vacuum",
        action="store_false",
        help="Drain without vacuuming first, past the dead rows of the rounds before.",
    )
    add_smoke_flag(parser)
    args = parser.parse_args()
    if args.smoke:
        print(SMOKE_NOTE)
        args.callers, args.seconds, args.jobs, args.rounds = 4, 0.3, 100, 1
    print(
        f"PostgreSQL; {args.callers} callers or consumers on each side, obsrelay on "
        f"{args.sites} site(s), batch "
        f"{args.batch}, {args.rounds} alternating rounds (medians); "
        f"{'VACUUM ANALYZE before each drain' if args.vacuum else 'no vacuum'}",
        flush=True,
    )
    # uvloop, as `obsrelay serve` runs (uvicorn[standard]) and as PgQueuer recommends.
    rates = uvloop.run(measure(args))
    print(f"\n{'':36} {'obsrelay':>10} {'PgQueuer':>10} {'ratio':>7}")
    for kind, title in (
        ("submit", "submit / enqueue, jobs/s"),
        ("drain", "claim+complete / dequeue+done, jobs/s"),
    ):
        ours = statistics.median(rates["obsrelay"][kind])
        theirs = statistics.median(rates["PgQueuer"][kind])
        ratio = ours / theirs
        verdict = "ok" if ratio >= TARGET_RATIO else f"BELOW {TARGET_RATIO}"
        print(f"{title:36} {ours:>10,.0f} {theirs:>10,.0f} {ratio:>6.2f}x {verdict}")
        # Each round's own ratio: how far the machine's speed moved the figures.
        each = zip(rates["obsrelay"][kind], rates["PgQueuer"][kind], strict=True)
        print(f"{'  each round':36} {' '.join(f'{a / b:.2f}x' for a, b in each)}")
    # PgQueuer at its best here, one consumer: a reference beside the target, not one.
    ours = statistics.median(rates["obsrelay"]["drain"])
    theirs = statistics.median(rates["PgQueuer"]["drain_one"])
    title = "  reference: PgQueuer, one consumer"
    print(f"{title:36} {ours:>10,.0f} {theirs:>10,.0f} {ours / theirs:>6.2f}x")


if __name__ == "__main__":
    main()
