"""How the command line tells its user what went wrong, and how it ends.

- An error is one sentence on stderr, `obsrelay: ...`; under `--json` it is one JSON
  object on stderr, `{"error": ..., "exit": N}`, so that a script can read it. A
  warning is `warning: ...`, or `{"warning": ...}`.
- The exit codes are the same either way: 0 done, 1 refused (by the server or the
  database), 2 bad usage or configuration, 3 server unreachable, 130 interrupted.
- Ctrl-C ends any command with 130 and no traceback, with or without `--json`.

It touches stderr and the exit status, nothing else.
"""

import json
import sys
from collections.abc import Callable
from typing import Any

import typer
from typer.exceptions import TyperException  # the usage errors, as Typer ships click's

INTERRUPTED = 130
_json = False


def use_json(argv: list[str]) -> None:
    """Errors and warnings as JSON when the command line asks for JSON output."""
    global _json
    _json = "--json" in argv


def wants_json() -> bool:
    return _json


def _say(kind: str, sentence: str, **more: object) -> None:
    if _json:
        print(json.dumps({kind: sentence, **more}, ensure_ascii=False), file=sys.stderr)
    else:
        prefix = "warning" if kind == "warning" else "obsrelay"
        print(f"{prefix}: {sentence}", file=sys.stderr)


def warn(sentence: str) -> None:
    _say("warning", sentence)


def fail(sentence: str, code: int = 1) -> typer.Exit:
    """Says `sentence` as an error; returns the Exit to raise."""
    _say("error", sentence, exit=code)
    return typer.Exit(code)


def run(command: Callable[..., object], argv: list[str]) -> int:
    """Runs the Typer app on `argv` and returns the exit status: usage errors and Ctrl-C
    are said here, the same way for every command."""
    use_json(argv)
    try:
        # Not standalone: Typer hands back the exit status and raises what it would
        # otherwise print in its own way.
        status = command(args=argv, standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return INTERRUPTED
    except TyperException as error:  # bad usage: a missing option, a bad value
        usage: Any = error  # click's UsageError: exit_code, format_message(), show()
        if not _json:
            usage.show()
        else:
            _say("error", usage.format_message(), exit=usage.exit_code)
        return int(usage.exit_code)
    return status if isinstance(status, int) else 0
