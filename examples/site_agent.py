"""A simulated observatory that takes its commands from obsrelay: how a site integrates.

    python examples/site_agent.py --server http://127.0.0.1:8000 --site mrc1 [--key ork_...]

It is built only on `obsrelay.client`:

- `SiteClient.jobs()` hands over every job once, as it comes (long-poll), and keeps
  going while the server restarts.
- Each job is reported STARTED, then progress with seconds until complete, then
  COMPLETE, or FAILED with a reason the people watching can read.
- `ObsrelayLogHandler` sends the observatory's own log lines to the user status
  stream, without ever slowing the observatory down.

The devices: a camera (`expose`, params `time` and optional `filter`, `count`), a
focuser (`move`, param `position`), a mount (`slew` with `ra`/`dec`, `park`). Every
device also knows `stop` (ends what it is doing) and the site knows
`cancel_all_commands` (ends everything and drops queued work). `--speed 10` makes a
30 s exposure take 3 s, for demonstrations and tests.
"""

import argparse
import contextlib
import logging
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from obsrelay.client import Conflict, Job, ObsrelayError, ObsrelayLogHandler, SiteClient

log = logging.getLogger("observatory")


class Stopped(Exception):
    """The job was told to stop (a `stop` or `cancel_all_commands` came)."""


class Device:
    """One device: runs its jobs one after another in its own thread."""

    def __init__(self, name: str, agent: "Agent") -> None:
        self.name = name
        self.agent = agent
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.stop_requested = threading.Event()
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            self.stop_requested.clear()
            self.agent.run(job, self)

    def stop(self) -> None:
        """Ends the running job and drops the queued ones."""
        while True:
            try:
                dropped = self.jobs.get_nowait()
            except queue.Empty:
                break
            with contextlib.suppress(Stopped):
                self.agent.report(dropped, "CANCELLED")
        self.stop_requested.set()

    def pause(self, seconds: float, job: Job, status: str) -> None:
        """Waits `seconds` (simulated), reporting progress each second; raises Stopped."""
        total = seconds
        while seconds > 0:
            self.agent.report(job, status, round(seconds))
            step = min(1.0, seconds)
            if self.stop_requested.wait(step / self.agent.speed):
                raise Stopped()
            seconds -= step
        if total <= 0 and self.stop_requested.is_set():
            raise Stopped()


def _number(params: dict[str, Any], name: str, default: float | None = None) -> float:
    value = params.get(name, default)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"'{name}' must be a number, not {value!r}") from None


def expose(device: Device, job: Job) -> None:
    seconds = _number(job.required_params, "time")
    count = int(_number(job.optional_params, "count", 1))
    image_filter = job.optional_params.get("filter", "clear")
    if not 0 <= seconds <= 3600:
        raise ValueError(f"an exposure of {seconds:g} s is out of range (0 to 3600)")
    for number in range(1, count + 1):
        log.info(
            "%s: exposing %g s through %s (%d of %d)",
            device.name,
            seconds,
            image_filter,
            number,
            count,
        )
        device.pause(seconds, job, "EXPOSING")
        device.pause(2, job, "READING_OUT")
        log.info("%s: image %d of %d saved", device.name, number, count)


def move_focuser(device: Device, job: Job) -> None:
    position = _number(job.required_params, "position")
    log.info("%s: moving to %g", device.name, position)
    device.pause(max(1.0, abs(position) / 1000), job, "MOVING")
    log.info("%s: at %g", device.name, position)


def slew(device: Device, job: Job) -> None:
    ra, dec = _number(job.required_params, "ra"), _number(job.required_params, "dec")
    if not -90 <= dec <= 90:
        raise ValueError(f"declination {dec:g} is not between -90 and 90")
    log.info("%s: slewing to ra %g, dec %g", device.name, ra, dec)
    device.pause(5, job, "SLEWING")
    log.info("%s: tracking ra %g, dec %g", device.name, ra, dec)


def park(device: Device, job: Job) -> None:
    log.info("%s: parking", device.name)
    device.pause(3, job, "PARKING")
    log.info("%s: parked", device.name)


ACTIONS: dict[tuple[str, str], Callable[[Device, Job], None]] = {
    ("camera", "expose"): expose,
    ("focuser", "move"): move_focuser,
    ("mount", "slew"): slew,
    ("mount", "park"): park,
}


class Agent:
    """Takes the site's jobs from obsrelay and gives each to its device."""

    def __init__(self, client: SiteClient, speed: float) -> None:
        self.client = client
        self.speed = speed
        self.devices: dict[str, Device] = {}

    def device(self, name: str) -> Device:
        if name not in self.devices:
            self.devices[name] = Device(name, self)
        return self.devices[name]

    def report(self, job: Job, status: str, seconds_until_complete: int = -1) -> None:
        try:
            self.client.update(job.ulid, status, seconds_until_complete)
        except Conflict:
            # Finished already: a `cancel_all_commands` cancelled it on the server.
            raise Stopped() from None
        except ObsrelayError as error:
            # Retried for a while already; the job goes on, the people see it later.
            log.warning("could not report %s of %s: %s", status, job.ulid, error)

    def dispatch(self, job: Job) -> None:
        """Takes one job from the server: site-wide commands now, device work queued."""
        if job.action == "cancel_all_commands":
            for device in self.devices.values():
                device.stop()
            log.warning("All commands cancelled by %s", job.user_name)
            with contextlib.suppress(Stopped):
                self.report(job, "COMPLETE", 0)
        elif job.action == "stop":
            self.device(job.instance).stop()
            log.info("%s: stopped by %s", job.instance, job.user_name)
            with contextlib.suppress(Stopped):
                self.report(job, "COMPLETE", 0)
        elif (job.device, job.action) not in ACTIONS:
            self.client.fail(job.ulid, f"{job.device} cannot {job.action}")
        else:
            self.device(job.instance).jobs.put(job)

    def run(self, job: Job, device: Device) -> None:
        """Runs one job on its device's thread and reports how it ended."""
        try:
            self.report(job, "STARTED")
            ACTIONS[job.device, job.action](device, job)
        except Stopped:
            log.info("%s: %s stopped", device.name, job.action)
            with contextlib.suppress(Stopped):
                self.report(job, "CANCELLED")
        except ValueError as error:
            try:
                self.client.fail(job.ulid, str(error))
            except ObsrelayError:
                log.exception("could not report the failure of %s", job.ulid)
        except Exception as error:  # a device fault must not kill the device's thread
            log.exception("%s: %s failed", device.name, job.action)
            self.client.fail(job.ulid, f"device fault: {error}")
        else:
            with contextlib.suppress(Stopped):
                self.report(job, "COMPLETE", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    server = os.environ.get("OBSRELAY_SERVER", "http://127.0.0.1:8000")
    parser.add_argument("--server", default=server)
    parser.add_argument("--site", default=os.environ.get("OBSRELAY_SITE", "mrc1"))
    parser.add_argument("--key", default=os.environ.get("OBSRELAY_SITE_KEY"))
    parser.add_argument("--speed", type=float, default=1.0, help="Simulated seconds per second.")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request is noise
    handler = ObsrelayLogHandler(args.server, args.site, args.key, level=logging.INFO)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    # SIGTERM ends the agent as Ctrl-C does, sending what the log handler still holds.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    with SiteClient(args.server, args.site, args.key) as client:
        agent = Agent(client, args.speed)
        log.info("Observatory %s online", args.site)
        try:
            for job in client.jobs():
                agent.dispatch(job)
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            log.info("Observatory %s going offline", args.site)
            handler.close()


if __name__ == "__main__":
    main()
