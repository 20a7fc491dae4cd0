"""obsrelay processes forked from one that has imported the server already.

A new interpreter spends 1.5 to 2 s of CPU importing what `obsrelay serve` imports,
most of a test server's start, and the suite starts about sixty. So each test worker
keeps one fork server (multiprocessing's), which imports those modules once; each
server is a fork of it that then runs `python -m obsrelay serve` (or `python -m
uvicorn ...`) as the interpreter would, with its own arguments, environment, working
directory, output and exit status.

The process is as real as one from a new interpreter: its own memory, sockets, signals
and exit. What differs is only that its modules were imported before its environment
was set, which obsrelay allows: it reads its settings when a command runs, not on
import. Coverage is started in it the way coverage's subprocess patch starts it in a
new interpreter, from the environment it is given.

This module may touch: os.environ, briefly, while the fork server is started (so that
coverage does not measure the fork server itself).
"""

import multiprocessing
import multiprocessing.forkserver
import multiprocessing.process
import os
import resource
import runpy
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

# What `obsrelay serve` imports before it serves (see obsrelay.cli.serve). "__main__":
# a main script (`pytest` run without workers) is run once here, not in every fork.
PRELOAD = [
    "__main__",
    "tests.forkserver",
    "obsrelay.cli",
    "obsrelay.app",
    "obsrelay.api.httpguard",
    "obsrelay.api.wsframes",
    "uvicorn",
    "uvicorn.main",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.lifespan.on",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "sqlalchemy.dialects.postgresql.asyncpg",
    "alembic.command",
    "alembic.runtime.migration",
]

# The variables by which coverage measures a new process (its subprocess patch).
_COVERAGE_VARIABLES = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")

_context = multiprocessing.get_context("forkserver")
_started = threading.Lock()


class ForkedProcess:
    """The parts of subprocess.Popen that the tests use, for a forked process."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process
        assert process.pid is not None
        self.pid: int = process.pid
        self.args = process.name

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self._process.exitcode

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()


def run_forked(
    module: str,
    args: list[str],
    env: Mapping[str, str],
    cwd: Path,
    output: Path,
    *,
    open_files: int | None = None,
) -> ForkedProcess:
    """`python -m module *args` in a fork: `env` is its whole environment, `cwd` its
    working directory, and its stdout and stderr go to the file `output`; `open_files`,
    if given, its soft limit of open files."""
    output.write_bytes(b"")  # there, even if the fork fails before it writes
    _start_fork_server()
    process = _context.Process(
        target=_module_in_fork,
        args=(module, args, dict(env), str(cwd), str(output), open_files),
        name=f"python -m {module} {' '.join(args)}",
        # A server a test failed to stop goes when the test worker does.
        daemon=True,
    )
    process.start()
    return ForkedProcess(process)


def _start_fork_server() -> None:
    with _started:
        _context.set_forkserver_preload(PRELOAD)
        # The fork server is started from this process's environment. Without coverage's
        # variables in it, coverage measures the servers forked from it (which start
        # coverage themselves), not the fork server's imports, which this process's own
        # imports measure already.
        hidden = {name: os.environ.pop(name) for name in _COVERAGE_VARIABLES if name in os.environ}
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            os.environ.update(hidden)


def _module_in_fork(
    module: str, args: list[str], env: dict[str, str], cwd: str, output: str, open_files: int | None
) -> None:
    """In the forked process: becomes `python -m module *args`."""
    if open_files is not None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))
    log = os.open(output, os.O_WRONLY | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = [sys.executable, *args]  # run_module puts the module's path first

    import coverage

    # Started as coverage's .pth file starts it in a new interpreter: only if `env` asks.
    measuring = coverage.process_startup()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        # A forked process ends in os._exit, which runs no atexit handler.
        if measuring is not None:
            measuring.stop()
            measuring.save()
