"""End to end, as an observatory network runs it: a server with local tokens and
required site keys, the example site agent, and a user on the `obsrelay` CLI.

The server and the agent are processes. The user's commands run in this process
(tests/commands.py), except where the process is the point: a follower read line by
line, Ctrl-C, and output through a real pipe."""

import json
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.commands import last_line, obsrelay_command, run_obsrelay
from tests.servers import ServerProcess, child_environment, start_server

pytestmark = pytest.mark.slow  # real processes, the CLI and the example site agent

AGENT = Path(__file__).resolve().parents[2] / "examples" / "site_agent.py"
SITE = "e2e-site"


@dataclass
class Network:
    server: ServerProcess
    workdir: Path
    token: str
    key: str

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`obsrelay ...` as the user runs it, with server and credentials in the env."""
        result = obsrelay_command(*args, OBSRELAY_SERVER=self.server.url, OBSRELAY_TOKEN=self.token)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def messages(self, *args: str) -> list[dict[str, Any]]:
        """`obsrelay logs tail --json`: one message per line."""
        lines = self.cli("logs", "tail", "--site", SITE, *args, "--json").stdout.splitlines()
        return [json.loads(line) for line in lines]

    def user_env(self) -> dict[str, str]:
        return child_environment({"OBSRELAY_SERVER": self.server.url, "OBSRELAY_TOKEN": self.token})

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def follow(self, *args: str) -> "Lines":
        """A long-running `obsrelay ...` whose output lines are read as they come."""
        process = subprocess.Popen(
            [sys.executable, "-m", "obsrelay", *args, "--json"],
            env=self.user_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        return Lines(process)


class Lines:
    """The stdout of a process, a JSON object per line, collected by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.seen: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(json.loads(line))

    def until(self, condition: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not any(condition(item) for item in self.seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not seen in {timeout} s; saw {self.seen}")
            try:
                self.seen.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                continue
        return self.seen

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _admin(workdir: Path, *args: str) -> str:
    """An operator's command on the server's machine; returns its last line."""
    return last_line(obsrelay_command(*args, cwd=workdir, OBSRELAY_DATA_DIR=str(workdir / "var")))


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    workdir = tmp_path_factory.mktemp("e2e")
    server = start_server(None, workdir, OBSRELAY_AUTH_MODE="local", OBSRELAY_SITE_KEYS="required")
    token = _admin(workdir, "tokens", "create", "--user", "ada", "--name", "Ada", "--role", "admin")
    key = _admin(workdir, "sites", "add-key", SITE)
    assert key.startswith("ork_")
    agent = subprocess.Popen(
        [sys.executable, str(AGENT), "--server", server.url, "--site", SITE, "--speed", "10"],
        env=child_environment({"OBSRELAY_SITE_KEY": key}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        yield Network(server, workdir, token, key)
    finally:
        agent.terminate()
        agent.wait(10)
        server.stop()


def _primary(job: dict[str, Any]) -> str:
    return str(job["primary"]["status"])


def test_a_job_from_the_cli_runs_at_the_site(network: Network):
    watch = network.follow("jobs", "watch", "--site", SITE)
    tail = network.follow("logs", "tail", "--site", SITE, "-f")
    try:
        _until_followers(network, 2)
        job = network.cli_json(
            "jobs", "submit", "-s", SITE, "--device", "camera", "--instance", "camera1",
            "--action", "expose", "-r", "time=20", "-o", "filter=R",
        )  # fmt: skip
        assert (_primary(job), job["required_params"], job["user_name"]) == (
            "UNREAD",
            {"time": 20},
            "Ada",
        )
        changes = watch.until(lambda c: c["ulid"] == job["ulid"] and _primary(c) == "COMPLETE")
        live = [_primary(c) for c in changes if c["ulid"] == job["ulid"]]
        assert live[0] == "UNREAD" and live[-1] == "COMPLETE"
        assert [s for s in live if s in ("RECEIVED", "STARTED", "EXPOSING", "COMPLETE")][:3] == [
            "RECEIVED",
            "STARTED",
            "EXPOSING",
        ]
        progress = [c["primary"]["seconds_until_complete"] for c in changes
                    if c["ulid"] == job["ulid"] and _primary(c) == "EXPOSING"]  # fmt: skip
        assert progress == sorted(progress, reverse=True) and progress[0] == 20

        shown = network.cli_json("jobs", "show", job["ulid"])
        history = [h["status"] for h in shown["history"] if h["queue"] == "primary"]
        assert history[:4] == ["UNREAD", "RECEIVED", "STARTED", "EXPOSING"]
        assert history[-1] == "COMPLETE"

        expected = "camera1: exposing 20 s through R (1 of 1)"
        tail.until(lambda m: m["message"] == "camera1: image 1 of 1 saved")
        messages = [m["message"] for m in network.messages()]
        assert expected in messages and "camera1: image 1 of 1 saved" in messages
        assert f"Observatory {SITE} online" in messages
        table = network.cli("jobs", "list", "--site", SITE).stdout
        assert job["ulid"] in table and "COMPLETE" in table
    finally:
        watch.stop()
        tail.stop()


def test_cancel_all_and_stop_reach_the_devices(network: Network):
    def submit(*args: str) -> dict[str, Any]:
        return dict(network.cli_json("jobs", "submit", "-s", SITE, *args))

    long = submit("--device", "camera", "--instance", "camera2", "--action", "expose",
                  "-r", "time=3000")  # fmt: skip
    _until_status(network, long["ulid"], "EXPOSING")
    cancel_all = network.cli_json("jobs", "cancel-all", "--site", SITE)
    assert (cancel_all["device"], cancel_all["instance"]) == ("all", "all")  # as the web UI
    _until_status(network, cancel_all["ulid"], "COMPLETE")
    assert _primary(network.cli_json("jobs", "show", long["ulid"])) == "CANCELLED"

    move = submit("--device", "focuser", "--instance", "focuser1", "--action", "move",
                  "-r", "position=300000")  # fmt: skip
    _until_status(network, move["ulid"], "MOVING")
    # A received job cannot be cancelled; the refusal says how to stop it.
    refused = network.cli("jobs", "cancel", move["ulid"], check=False)
    assert refused.returncode == 1
    hint = f"obsrelay jobs stop --site {SITE} --device focuser --instance focuser1"
    assert hint in " ".join(refused.stderr.split()), refused.stderr
    stop = network.cli_json(*hint.split()[1:])
    assert stop["action"] == "stop"
    _until_status(network, move["ulid"], "CANCELLED")
    slew = submit("--device", "mount", "--instance", "mount1", "--action", "slew",
                  "-r", "ra=10.5", "-r", "dec=41.2")  # fmt: skip
    _until_status(network, slew["ulid"], "COMPLETE")

    bad = submit("--device", "mount", "--instance", "mount1", "--action", "slew",
                 "-r", "ra=1", "-r", "dec=95")  # fmt: skip
    _until_status(network, bad["ulid"], "FAILED")
    unknown = submit("--device", "dome", "--instance", "dome1", "--action", "open")
    _until_status(network, unknown["ulid"], "FAILED")
    messages = [m["message"] for m in network.messages()]
    assert "All commands cancelled by Ada" in messages
    assert f"Job {unknown['ulid']} failed: dome cannot open" in messages
    assert any("declination 95 is not between -90 and 90" in m for m in messages)


def test_the_cli_says_what_is_wrong(network: Network):
    unknown = network.cli("jobs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV", check=False)
    assert unknown.returncode == 1 and "There is no job" in unknown.stderr
    bad_param = network.cli(
        "jobs", "submit", "-s", SITE, "--device", "camera", "--instance", "c1",
        "--action", "expose", "-r", "time", check=False,
    )  # fmt: skip
    assert bad_param.returncode == 2 and "key=value" in bad_param.stderr
    no_token = obsrelay_command(
        "jobs", "submit", "-s", SITE, "--device", "camera", "--instance", "c1",
        "--action", "expose", OBSRELAY_SERVER=network.server.url,
    )  # fmt: skip
    assert no_token.returncode == 1 and "401" in no_token.stderr
    no_key = network.cli("logs", "send", "--site", SITE, "hello", check=False)
    assert no_key.returncode == 1 and "X-Site-Key" in no_key.stderr
    away = obsrelay_command("jobs", "list", "-s", SITE, OBSRELAY_SERVER="http://127.0.0.1:9")
    assert away.returncode == 3 and "Cannot reach" in away.stderr


def test_logs_send_with_the_site_key(network: Network):
    sent = obsrelay_command(
        "logs", "send", "--site", SITE, "--level", "error", "Rain sensor tripped", "--json",
        OBSRELAY_SERVER=network.server.url, OBSRELAY_SITE_KEY=network.key,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["level"] == "error"
    messages = network.messages("--since", "5m")
    assert {"message": "Rain sensor tripped", "level": "error"}.items() <= messages[-1].items()


def _until(network: Network, path: str, condition: Any, what: str, timeout: float = 30.0) -> None:
    """Waits, over the API or /metrics, until `condition(response)` holds: for a state that
    the test's next command is about, and that the agent or a follower reaches in its own
    time. A CLI command for every poll would test nothing more."""
    headers = {"Authorization": f"Bearer {network.token}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = network.server.http.get(path, headers=headers)
        assert response.status_code == 200, response.text
        if condition(response):
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not in {timeout} s")


def _until_status(network: Network, ulid: str, status: str) -> None:
    def reached(response: Any) -> bool:
        return _primary(response.json()) == status

    _until(network, f"/api/v1/jobs/{ulid}", reached, f"{ulid} at {status}")


def _until_followers(network: Network, count: int) -> None:
    """Until `count` followers have their stream sockets open (they miss nothing after)."""

    def connected(response: Any) -> bool:
        [line] = [line for line in response.text.splitlines()
                  if line.startswith("obsrelay_stream_sockets ")]  # fmt: skip
        return float(line.split()[1]) >= count

    _until(network, "/metrics", connected, f"{count} followers connected")


def _until_agent_online(network: Network) -> None:
    """Until the agent has said it is online and polled: it starts in its own time."""

    def online(response: Any) -> bool:
        site = response.json()
        return bool(site["online"] and site["last_seen"]["poll_primary"])

    _until(network, f"/api/v1/sites/{SITE}", online, "the agent online")


def test_sites_shows_the_agent_online_and_a_silent_site_first(network: Network):
    _admin(network.workdir, "sites", "add", "e2e-silent")
    _until_agent_online(network)
    sites = network.cli_json("sites")
    assert [site["site"] for site in sites] == ["e2e-silent", SITE]  # offline ones first
    silent, agent = sites
    assert (silent["online"], silent["last_seen_ms"]) == (False, None)
    assert agent["online"] and agent["last_seen"]["poll_primary"] is not None
    assert agent["last_message_level"] is not None
    table = network.cli("sites").stdout
    assert "OFFLINE" in table and "online" in table and "never" in table
    assert table.index("e2e-silent") < table.index(SITE)


def test_the_terminal_shows_values_as_typed_and_piped_lines_whole(network: Network):
    """Rich markup in a user's values is not read as markup, a message's ANSI escapes
    reach no terminal, and piped output is not wrapped at 80 columns."""
    long_value = "x" * 150
    job = network.cli_json(
        "jobs", "submit", "-s", SITE, "--device", "cam[bold]1[/]", "--instance", "i",
        "--action", "expose", "-o", f"note={long_value}",
    )  # fmt: skip
    # Through a real pipe, from a process of its own.
    listed = run_obsrelay(
        "jobs", "list", "--site", SITE,
        OBSRELAY_SERVER=network.server.url, OBSRELAY_TOKEN=network.token,
    ).stdout  # fmt: skip
    [row] = [line for line in listed.splitlines() if job["ulid"] in line]
    assert "cam[bold]1[/]/i expose" in row and long_value in row  # one line, not wrapped
    shown = network.cli("jobs", "show", job["ulid"]).stdout
    assert "cam[bold]1[/]" in shown

    escape = "\x1b[2J\x1b[31mthe screen is cleared\x1b[0m"
    sent = obsrelay_command(
        "logs", "send", "--site", SITE, escape,
        OBSRELAY_SERVER=network.server.url, OBSRELAY_SITE_KEY=network.key,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    tail = network.cli("logs", "tail", "--site", SITE, "--since", "5m").stdout
    assert "\x1b" not in tail
    assert "\\x1b[2J\\x1b[31mthe screen is cleared\\x1b[0m" in tail
    # Under --json the text is the message itself, escaped the JSON way.
    assert escape in [m["message"] for m in network.messages("--since", "5m")]


@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_ends_a_follower_the_same_with_and_without_json(network: Network, as_json):
    command = ["logs", "tail", "-f", "--site", SITE, "--since", "1m"]
    process = subprocess.Popen(
        [sys.executable, "-m", "obsrelay", *command, *(["--json"] if as_json else [])],
        # If it ever hangs, SIGABRT below makes it print where each of its threads is.
        env={**network.user_env(), "PYTHONFAULTHANDLER": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    marker = f"follower {uuid.uuid4().hex[:8]}"
    network.cli("logs", "send", "--site", SITE, marker, "--key", network.key)
    assert process.stdout is not None
    # Following: the message is printed, from the list or live.
    for line in process.stdout:
        if marker in line:
            break
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, stderr = process.communicate(timeout=20)
        raise AssertionError(f"Ctrl-C did not end the follower; its threads:\n{stderr}") from None
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr


def test_errors_under_json_are_json_on_stderr_with_the_same_exit_codes(network: Network):
    cases = [
        (("jobs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), 1, "There is no job"),  # refused
        (("jobs", "submit", "-s", SITE), 2, "Missing option"),  # bad usage
        (("jobs", "list", "-s", SITE, "--server", "http://127.0.0.1:9"), 3, "Cannot reach"),
        (("sites", "revoke-key", SITE, "no-such-key"), 1, "has no active key"),  # local
    ]
    for args, code, words in cases:
        plain = network.cli(*args, check=False)
        structured = network.cli(*args, "--json", check=False)
        assert plain.returncode == structured.returncode == code, (args, structured.stderr)
        # Every line is JSON (a warning too, as {"warning": ...}); one is the error.
        said = [json.loads(line) for line in structured.stderr.strip().splitlines()]
        [error] = [item for item in said if "error" in item]
        assert error["exit"] == code and words in error["error"], error
        assert structured.stdout == ""
