"""The `obsrelay` command line as the tests run it."""

import subprocess
import sys
from pathlib import Path

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
