"""A smoke test of an installed obsrelay, run by the Python of the environment under
test (`make lowest` runs it on the lowest declared versions; a test runs it on `.venv`):
the server starts on its default settings, and a job goes round.

It needs only the install itself, not the test tools: it runs `obsrelay` (tokens,
sites, serve) as an operator would, in a data directory of its own, on a free loopback
port, and drives the server with obsrelay.client. It prints what it checked and exits 0,
or names the step that failed and exits 1.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from obsrelay.client import Job, SiteClient, UserClient

SITE = "smoke1"
START_SECONDS = 60.0


def obsrelay(*arguments: str, environment: dict[str, str]) -> dict[str, object]:
    """Runs one `obsrelay ... --json` command and returns its JSON answer."""
    ran = subprocess.run(
        [sys.executable, "-m", "obsrelay", *arguments, "--json"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ran.returncode != 0:
        sys.exit(f"smoke: `obsrelay {' '.join(arguments)}` failed: {ran.stderr.strip()}")
    answer: dict[str, object] = json.loads(ran.stdout)
    return answer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_up(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"smoke: the server ended at start with status {server.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit(f"smoke: the server did not answer /healthz within {START_SECONDS:.0f} s")


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"smoke: {what}")
    print(f"ok: {what}")


def round_trip(url: str, token: str, key: str) -> None:
    """A user submits a job to a site waiting in a long-poll; the site completes it and
    posts a message; the user sees both in the API and on the native stream."""
    with UserClient(url, token) as user, SiteClient(url, SITE, key) as site:
        head = user.stream_head(SITE)
        claimed: list[Job] = []
        waiting = threading.Thread(target=lambda: claimed.extend(site.claim(wait=10)))
        waiting.start()
        time.sleep(0.5)  # the long-poll is waiting before the job comes
        job = user.submit(SITE, "camera", "camera1", "expose", {"time": 1})
        waiting.join(15)
        check([found.ulid for found in claimed] == [job.ulid], "the waiting site got the job")
        site.complete(job.ulid)
        check(user.job(job.ulid).primary.status == "COMPLETE", "the job is COMPLETE")
        site.post_message("smoke test done")
        texts = [message.message for message in user.messages(SITE)]
        check("smoke test done" in texts, "the site's message is kept")
        topics = []
        for frame in user.watch(SITE, since=head, reconnect=False):
            topics.append(frame.topic)
            if frame.message is not None:
                break
        check(topics.count("job") >= 2 and topics[-1] == "message", "the stream told it all")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="obsrelay-smoke-") as directory:
        port = free_port()
        environment = {
            **{name: value for name, value in os.environ.items() if "OBSRELAY_" not in name},
            "OBSRELAY_DATA_DIR": str(Path(directory) / "data"),
            "OBSRELAY_HOST": "127.0.0.1",
            "OBSRELAY_PORT": str(port),
        }
        version = subprocess.run(
            [sys.executable, "-m", "obsrelay", "--version"],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"smoke: {version.stdout.strip()} on Python {sys.version.split()[0]}")
        token = str(
            obsrelay(
                "tokens",
                "create",
                "--user",
                "smoke",
                "--name",
                "Smoke",
                "--role",
                "admin",
                environment=environment,
            )["token"]
        )
        obsrelay("sites", "add", SITE, environment=environment)
        key = str(obsrelay("sites", "add-key", SITE, environment=environment)["key"])
        url = f"http://127.0.0.1:{port}"
        log = Path(directory) / "server.log"
        with log.open("wb") as output:
            server = subprocess.Popen(
                [sys.executable, "-m", "obsrelay", "serve"],
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_until_up(url, server)
                print(f"ok: the server started on {url}")
                round_trip(url, token, key)
            except SystemExit:
                print(f"the server's output:\n{log.read_text()[-4000:]}", file=sys.stderr)
                raise
            finally:
                server.terminate()
                server.wait(30)


if __name__ == "__main__":
    main()
