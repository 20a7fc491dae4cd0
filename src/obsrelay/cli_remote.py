"""The `obsrelay jobs`, `obsrelay logs` and `obsrelay sites` (without a subcommand)
commands: a running server, from the terminal.

Server and credentials come from --server/OBSRELAY_SERVER, --token/OBSRELAY_TOKEN
(a user's) and --key/OBSRELAY_SITE_KEY (a site's). Every command takes --json and
then prints JSON only, for scripts: one document, or for `logs tail` and `jobs watch`
one object per line.
"""

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Annotated, Any, TextIO

import typer
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from obsrelay import cli_output
from obsrelay.client import (
    Conflict,
    Frame,
    Job,
    Message,
    ObsrelayError,
    ServerUnavailable,
    Site,
    SiteClient,
    UserClient,
)
from obsrelay.config import parse_duration
from obsrelay.domain.lifecycle import is_final

jobs_app = typer.Typer(
    help="Submit, list, show, cancel, stop and watch jobs.", no_args_is_help=True
)
logs_app = typer.Typer(help="Send and follow a site's user status messages.", no_args_is_help=True)


def _console(stream: TextIO) -> Console:
    """A console on `stream`. Piped or redirected, it does not wrap at rich's 80 columns:
    a script reads whole lines, and a table keeps every column."""
    piped = not stream.isatty()
    return Console(file=stream, highlight=False, width=_PIPED_WIDTH if piped else None)


_PIPED_WIDTH = 1_000_000
out = _console(sys.stdout)
err = _console(sys.stderr)

ServerOption = Annotated[
    str,
    typer.Option("--server", envvar="OBSRELAY_SERVER", help="The obsrelay server's URL."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="OBSRELAY_TOKEN", help="Your user token.", show_default=False),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", envvar="OBSRELAY_SITE_KEY", help="The site's key.", show_default=False),
]
SiteOption = Annotated[str, typer.Option("--site", "-s", help="The site, e.g. mrc1.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"

STATUS_STYLES = {
    "UNREAD": "bright_black",
    "RECEIVED": "cyan",
    "STARTED": "yellow",
    "COMPLETE": "green",
    "FAILED": "bold red",
    "CANCELLED": "magenta",
    "EXPIRED": "bright_black",
}
LEVEL_STYLES = {
    "debug": "bright_black",
    "info": "default",
    "warning": "yellow",
    "error": "red",
    "critical": "bold white on red",
}
LEVELS = tuple(LEVEL_STYLES)


def shown(value: object) -> Text:
    """A value from the server (a device, an action, a message, a sentence) as it was
    typed: never read as rich markup (`cam[bold]1[/]` stays as it is), and with its
    control characters (an ANSI escape, a carriage return) shown as `\\x1b`, never
    acted on by the terminal. Newlines and tabs stay."""
    text = str(value)
    if not text.isprintable():
        text = "".join(
            char if char.isprintable() or char in "\n\t" else repr(char)[1:-1] for char in text
        )
    return Text(text)


def _fail(error: ObsrelayError) -> typer.Exit:
    code = 3 if isinstance(error, ServerUnavailable) else 1
    if cli_output.wants_json():
        return cli_output.fail(str(error), code)
    err.print(Text.assemble(("obsrelay:", "red"), " ", shown(error)))
    return typer.Exit(code)


@contextlib.contextmanager
def _errors_as_exit() -> Iterator[None]:
    """A client error becomes its sentence on stderr and the exit status that fits it."""
    try:
        yield
    except ObsrelayError as error:
        raise _fail(error) from None


def parse_params(pairs: list[str] | None, option: str) -> dict[str, Any]:
    """`key=value` pairs; a value that is JSON (30, true, [1,2], "x") is taken as JSON."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise typer.BadParameter(f"'{pair}' is not key=value", param_hint=option)
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False), flush=True)


def _status_text(status: str) -> Text:
    return Text(shown(status).plain, style=STATUS_STYLES.get(status, "yellow"))


def _time(ms_or_s: float, *, seconds: bool = False, short: bool = False) -> str:
    at = ms_or_s if seconds else ms_or_s / 1000
    return time.strftime("%H:%M:%S" if short else "%Y-%m-%d %H:%M:%S", time.localtime(at))


def _params(job: Job) -> str:
    both = {**job.required_params, **job.optional_params}
    return " ".join(f"{key}={json.dumps(value)}" for key, value in both.items())


def _command(job: Job) -> str:
    return f"{job.device}/{job.instance} {job.action} {_params(job)}".strip()


def _jobs_table(jobs: list[Job], title: str) -> Table:
    # A narrow terminal gets the columns it has room for; the alternate queue only
    # where somebody uses it.
    wide = out.width >= 110
    show_alternate = wide and any(job.alternate.status != "UNREAD" for job in jobs)
    table = Table(title=shown(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("created", no_wrap=True)
    table.add_column("ulid", no_wrap=True)
    table.add_column("command", overflow="fold", ratio=1, min_width=12)
    if wide:
        table.add_column("user", overflow="ellipsis", max_width=14, no_wrap=True)
    table.add_column("status", no_wrap=True)
    if show_alternate:
        table.add_column("alternate", no_wrap=True)
    table.add_column("left", justify="right", no_wrap=True)
    for job in jobs:
        remaining = _seconds_left(job)
        row: list[str | Text] = [
            _time(job.created_ms, short=True),
            job.ulid,
            shown(_command(job)),
            *([shown(job.user_name)] if wide else []),
            _status_text(job.primary.status),
        ]
        if show_alternate:
            row.append(_status_text(job.alternate.status))
        row.append("" if remaining is None else f"{remaining} s")
        table.add_row(*row)
    return table


def _seconds_left(job: Job) -> int | None:
    """Seconds until complete as reported, counted down since the report."""
    state = job.primary
    if state.seconds_until_complete < 0 or is_final(state.status):
        return None
    passed = (time.time() * 1000 - state.updated_ms) / 1000
    return max(0, round(state.seconds_until_complete - passed))


def _job_json(job: Job) -> dict[str, Any]:
    data = asdict(job)
    if job.history is None:
        del data["history"]
    return data


@jobs_app.command("submit")
def jobs_submit(
    site: SiteOption,
    device: Annotated[str, typer.Option(help="The device type, e.g. camera.")],
    instance: Annotated[str, typer.Option(help="The device instance, e.g. camera1.")],
    action: Annotated[str, typer.Option(help="What it should do, e.g. expose.")],
    required: Annotated[
        list[str] | None, typer.Option("--required", "-r", help="A required param key=value.")
    ] = None,
    optional: Annotated[
        list[str] | None, typer.Option("--optional", "-o", help="An optional param key=value.")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a command to a site: obsrelay jobs submit -s mrc1 --device camera
    --instance camera1 --action expose -r time=30 -o filter=R"""
    required_params = parse_params(required, "--required")
    optional_params = parse_params(optional, "--optional")
    with UserClient(server, token) as relay, _errors_as_exit():
        job = relay.submit(site, device, instance, action, required_params, optional_params)
    if as_json:
        print_json(_job_json(job))
    else:
        out.print(
            Text.assemble("Submitted ", (job.ulid, "bold"), " to ", shown(job.site), ": "),
            shown(_command(job)),
            sep="",
        )


@jobs_app.command("list")
def jobs_list(
    site: SiteOption,
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many.")] = 20,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """A site's jobs, newest first."""
    with UserClient(server, token) as relay, _errors_as_exit():
        jobs = relay.jobs(site, status=status, limit=limit)
    if as_json:
        print_json([_job_json(job) for job in jobs])
    else:
        out.print(_jobs_table(jobs, f"Jobs at {site}, newest first"))


@jobs_app.command("show")
def jobs_show(
    ulid: Annotated[str, typer.Argument(help="The job's ULID.")],
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """One job and its whole status history."""
    with UserClient(server, token) as relay, _errors_as_exit():
        job = relay.job(ulid)
    if as_json:
        print_json(_job_json(job))
        return
    out.print(_jobs_table([job], f"Job {job.ulid} at {job.site}"))
    history = Table(title="History", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("at", "queue", "status", "left", "by"):
        history.add_column(column)
    for entry in job.history or []:
        seconds = entry.seconds_until_complete
        history.add_row(
            _time(entry.at_ms),
            entry.queue,
            _status_text(entry.status),
            "" if seconds < 0 else f"{seconds} s",
            shown(entry.source),
        )
    out.print(history)


@jobs_app.command("cancel")
def jobs_cancel(
    ulid: Annotated[str, typer.Argument(help="The job's ULID.")],
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job the site has not received yet (to stop one it has: jobs stop)."""
    with UserClient(server, token) as relay, _errors_as_exit():
        try:
            job = relay.cancel(ulid)
        except Conflict as refused:
            held = relay.job(ulid)
            if is_final(held.status):
                raise
            # Received: only the site can end it now, told by a stop of its own.
            raise Conflict(
                refused.status,
                f"{refused.message} To stop it: obsrelay jobs stop --site {held.site} "
                f"--device {held.device} --instance {held.instance}",
            ) from None
    if as_json:
        print_json(_job_json(job))
    else:
        out.print(Text.assemble("Cancelled ", (job.ulid, "bold"), " at ", shown(job.site)))


@jobs_app.command("cancel-all")
def jobs_cancel_all(
    site: SiteOption,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel every unfinished job of a site and tell the site to stop everything
    (cancel_all_commands, as the web front end sends it)."""
    with UserClient(server, token) as relay, _errors_as_exit():
        job = relay.cancel_all(site)
    if as_json:
        print_json(_job_json(job))
    else:
        out.print(
            Text.assemble("Sent cancel_all_commands to ", shown(job.site), ": ", (job.ulid, "bold"))
        )


@jobs_app.command("stop")
def jobs_stop(
    site: SiteOption,
    device: Annotated[str, typer.Option(help="The device type, e.g. camera.")],
    instance: Annotated[str, typer.Option(help="The device instance, e.g. camera1.")],
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tell a device to stop what it is doing: the way to stop a job the site has
    received already (cancel only reaches jobs it has not)."""
    with UserClient(server, token) as relay, _errors_as_exit():
        job = relay.stop(site, device, instance)
    if as_json:
        print_json(_job_json(job))
    else:
        target = shown(f"{job.site} {job.device}/{job.instance}")
        out.print(Text.assemble("Sent stop to ", target, ": ", (job.ulid, "bold")))


def _frames(relay: UserClient, site: str, since: int | None) -> Iterator[Frame]:
    with _errors_as_exit():
        yield from relay.watch(site, since)


@jobs_app.command("watch")
def jobs_watch(
    site: SiteOption,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Rows to show.")] = 20,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """A live table of a site's jobs as their statuses change (Ctrl-C to stop).
    With --json, one line per job change instead."""
    with UserClient(server, token) as relay:
        with _errors_as_exit():
            head = relay.stream_head(site)
            jobs = {job.ulid: job for job in relay.jobs(site, limit=limit)}
        if as_json:
            for frame in _frames(relay, site, head):
                if frame.job:
                    print_json(_job_json(frame.job))
            return

        def table() -> Table:
            newest = sorted(jobs.values(), key=lambda job: job.ulid, reverse=True)[:limit]
            return _jobs_table(newest, f"Jobs at {site}, live")

        with Live(table(), console=out, refresh_per_second=2) as live:
            for frame in _frames(relay, site, head):
                if frame.job:
                    jobs[frame.job.ulid] = frame.job
                    live.update(table())


@logs_app.command("send")
def logs_send(
    text: Annotated[str, typer.Argument(help="The message.")],
    site: SiteOption,
    level: Annotated[str, typer.Option(help=f"One of {', '.join(LEVELS)}.")] = "info",
    server: ServerOption = DEFAULT_SERVER,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Post a user status message as the site."""
    with SiteClient(server, site, key, retry_seconds=0) as client, _errors_as_exit():
        message = client.post_message(text, level)
    if as_json:
        print_json(asdict(message))
    else:
        at = _time(message.timestamp, seconds=True)
        out.print(Text.assemble("Sent to ", shown(site), f" at {at}"))


def _print_message(message: Message) -> None:
    style = LEVEL_STYLES.get(message.level, "default")
    line = Text(f"{_time(message.timestamp, seconds=True)} ", style="bright_black")
    line.append(f"{message.level.upper():<8} ", style=style)
    text = shown(message.message).plain
    line.append(text, style=style if message.level != "info" else "default")
    out.print(line)


@logs_app.command("tail")
def logs_tail(
    site: SiteOption,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep following, live.")] = False,
    since: Annotated[str, typer.Option(help="How far back: 15m, 12h, 7d.")] = "1h",
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """A site's recent messages, coloured by level; with -f, follow them live (resuming
    after a dropped connection without losing or repeating a line)."""
    try:
        start = time.time() - parse_duration(since)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--since") from None
    show = (lambda m: print_json(asdict(m))) if as_json else _print_message
    with UserClient(server, token) as relay:
        with _errors_as_exit():
            # The head first: whatever comes after it is followed, nothing falls between.
            head = relay.stream_head(site) if follow else 0
            recent = relay.messages(site, since=start)
        seen = {message.ulid for message in recent}
        for message in recent:
            show(message)
        if not follow:
            return
        for frame in _frames(relay, site, head):
            live = frame.message
            if live is not None and live.ulid not in seen:  # not shown from the list
                show(live)


def _utc(ms: float, now_ms: float) -> str:
    """A time in UTC, as astronomers read it: the clock today, the date before."""
    at, now = time.gmtime(ms / 1000), time.gmtime(now_ms / 1000)
    same_day = at[:3] == now[:3]
    return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M", at) + " UTC"


def _ago(ms: float | None, now_ms: float) -> str:
    if ms is None:
        return "never"
    seconds = max(0, round((now_ms - ms) / 1000))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _sites_table(sites: list[Site], now_ms: float) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("site", "state", "since", "last seen", "unread", "held", "attention"):
        table.add_column(column, no_wrap=column != "attention")
    if out.width >= 100:
        table.add_column("last message", no_wrap=True)
    for site in sites:
        state = Text("online", style="green") if site.online else Text("OFFLINE", style="bold red")
        unread = str(site.unread)
        if site.oldest_unread_ms is not None:
            unread += f" (oldest {_ago(site.oldest_unread_ms, now_ms)})"
        attention = ", ".join(
            f"{len(ulids)} {what}"
            for what, ulids in (("overdue", site.overdue), ("abandoned", site.abandoned))
            if ulids
        )
        row: list[str | Text] = [
            shown(site.site),
            state,
            _utc(site.since_ms, now_ms),
            _ago(site.last_seen_ms, now_ms),
            unread,
            f"{site.received + site.running}",
            Text(attention, style="bold yellow"),
        ]
        if out.width >= 100:
            message = Text("")
            if site.last_message_level and site.last_message_timestamp is not None:
                message = Text(
                    f"{site.last_message_level} {_ago(site.last_message_timestamp * 1000, now_ms)}",
                    style=LEVEL_STYLES.get(site.last_message_level, "default"),
                )
            row.append(message)
        table.add_row(*row)
    return table


def show_sites(server: str, token: str | None, as_json: bool) -> None:
    """`obsrelay sites`: every site of a running server, offline ones first."""
    with UserClient(server, token) as relay, _errors_as_exit():
        sites = relay.overview()
    if as_json:
        print_json([asdict(site) for site in sites])
    elif not sites:
        out.print("No sites.")
    else:
        out.print(_sites_table(sites, time.time() * 1000))
