"""What the Makefile installs on a fresh machine: `make serve` the service alone, `make
test` the test tools too. Read from `make -n` (what make would run) for a virtual
environment that does not exist yet; `make lowest` (.ci/run) shows that the service
runs with the [server] extra alone."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def installs(target: str, venv: Path) -> list[str]:
    planned = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [line for line in planned if "pip install" in line and "--upgrade pip" not in line]


def test_make_serve_installs_what_serving_needs_and_no_test_tools(tmp_path: Path):
    venv = tmp_path / "fresh"
    assert installs("serve", venv) == [f"{venv}/bin/python -m pip install --quiet -e '.[server]'"]


def test_make_test_installs_the_service_and_the_test_tools(tmp_path: Path):
    venv = tmp_path / "fresh"
    assert installs("pytest", venv) == [
        f"{venv}/bin/python -m pip install --quiet -e '.[server,dev,bench]'"
    ]
