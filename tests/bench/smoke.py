"""Running a benchmark's smoke mode (`--smoke`) as a person would: its own process."""

import subprocess
import sys
from pathlib import Path

from tests.servers import child_environment

ROOT = Path(__file__).resolve().parents[2]


def run_smoke(module: str, *args: str, **env: str) -> str:
    """`python -m <module> --smoke <args>`'s output; fails the test if it fails. Outside
    coverage: a benchmark measures the code as it runs in production."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--smoke", *args],
        cwd=ROOT,
        env=child_environment(env, measured=False),
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{module} --smoke failed:\n{output[-4000:]}"
    assert "smoke run" in output, output[-2000:]
    return output
