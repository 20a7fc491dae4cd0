"""The `obsrelay` command line as the tests run it: in this process (obsrelay_command),
or as a process of its own (run_obsrelay)."""

import io
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from tests.servers import child_environment


def run_obsrelay(
    *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m obsrelay ...` as a person runs it (see child_environment)."""
    return subprocess.run(
        [sys.executable, "-m", "obsrelay", *args],
        cwd=cwd,
        env=child_environment(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    """The last line a successful command printed (tokens and keys are printed there)."""
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def obsrelay_command(
    *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`obsrelay ...` run in this process: the command line's own code (the Typer app,
    through `cli_output.run` as `obsrelay.cli.main` calls it), on the environment and the
    working directory that run_obsrelay would give its process, with what it prints on
    stdout and stderr, piped, and its exit status.

    A new interpreter costs a second of imports, two under coverage: ten times most
    commands' own work. run_obsrelay is for what needs the process: the entry point,
    `serve`, signals, a follower whose lines are read as they come.

    The command runs in a thread of its own, as it would run alone: it starts event loops
    of its own (the test's may be running). For that time this process's environment,
    working directory, stdout, stderr and logging are the command's; they are restored
    after it.
    """
    from obsrelay import cli, cli_output

    outcome: dict[str, Any] = {}

    def command() -> None:
        try:
            outcome["status"] = cli_output.run(cli.app, list(args))
        except SystemExit as exit:  # as the interpreter ends on it
            if isinstance(exit.code, str):
                print(exit.code, file=sys.stderr)
            outcome["status"] = exit.code if isinstance(exit.code, int) else int(bool(exit.code))
        except BaseException as error:  # a traceback: the test fails on it, here
            outcome["error"] = error

    stdout, stderr = io.StringIO(), io.StringIO()
    thread = threading.Thread(target=command, name="obsrelay-command", daemon=True)
    with _ONE_AT_A_TIME, _the_commands_process(cwd, env), _piped(thread, stdout, stderr):
        thread.start()
        thread.join(60)
    if thread.is_alive():
        raise AssertionError(f"obsrelay {' '.join(args)} did not end in 60 s")
    if "error" in outcome:
        raise outcome["error"]
    return subprocess.CompletedProcess(
        ["obsrelay", *args], outcome["status"], stdout.getvalue(), stderr.getvalue()
    )


# Environment, working directory and streams belong to the whole process: one command
# at a time has them.
_ONE_AT_A_TIME = threading.Lock()


@contextmanager
def _the_commands_process(cwd: Path | None, env: dict[str, str]) -> Iterator[None]:
    """This process's environment as child_environment makes it, and `cwd`; its loggers as
    they were, after (`obsrelay serve` and `db upgrade` set up logging)."""
    environ, directory = dict(os.environ), os.getcwd()
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    saved = [
        (logger, list(logger.handlers), logger.level, logger.propagate)
        for logger in loggers
        if isinstance(logger, logging.Logger)
    ]
    os.environ.clear()
    os.environ.update(child_environment(env))
    try:
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(directory)
        os.environ.clear()
        os.environ.update(environ)
        for logger, handlers, level, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


class _CommandsStream:
    """sys.stdout or sys.stderr while a command runs: its buffer for what the command's
    thread writes, the stream it replaces for every other thread. A server or a fake in
    this process may print meanwhile (socketserver prints a client that hung up), and
    that is not the command's output."""

    def __init__(self, command: threading.Thread, buffer: io.StringIO, others: Any) -> None:
        self._command = command
        self._buffer = buffer
        self._others = others

    def _target(self) -> Any:
        return self._buffer if threading.current_thread() is self._command else self._others

    def write(self, text: str) -> int:
        written: int = self._target().write(text)
        return written

    def __getattr__(self, name: str) -> Any:  # flush, isatty, encoding...
        return getattr(self._target(), name)


@contextmanager
def _piped(command: threading.Thread, stdout: io.StringIO, stderr: io.StringIO) -> Iterator[None]:
    """What `command` writes on sys.stdout and sys.stderr into these buffers, and the
    command line's rich consoles, which hold the streams there were at import, made again
    on them: as a pipe, they are not wrapped."""
    from obsrelay import cli_remote

    consoles = cli_remote.out, cli_remote.err
    with (
        redirect_stdout(_CommandsStream(command, stdout, sys.stdout)),
        redirect_stderr(_CommandsStream(command, stderr, sys.stderr)),
    ):
        cli_remote.out, cli_remote.err = cli_remote._console(stdout), cli_remote._console(stderr)
        try:
            yield
        finally:
            cli_remote.out, cli_remote.err = consoles
