"""Prints pip constraints that hold each of obsrelay's direct dependencies (the client's
and the [server] extra's) at the lowest version pyproject.toml declares, for the
lowest-versions check (`make lowest`). Their own dependencies resolve as usual: the
equivalent of `uv pip install --resolution lowest-direct`, with pip alone.

A dependency without a lower bound is an error: its lowest version could not be tested.
"""

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
LOWER_BOUND = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*(?P<version>[^,;\s]+)")


def lowest_constraints(pyproject: Path = PYPROJECT) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["server"]]
    constraints = []
    for requirement in requirements:
        bound = LOWER_BOUND.match(requirement)
        if bound is None:
            sys.exit(f"lowest versions: {requirement!r} declares no lower bound (>=)")
        constraints.append(f"{bound['name']}=={bound['version']}")
    return constraints


if __name__ == "__main__":
    print("\n".join(lowest_constraints()))
