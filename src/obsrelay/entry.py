"""The `obsrelay` command's entry point. On a client-only install (`pip install
obsrelay`) the command line's packages are missing: it says in one line what to
install, instead of an ImportError's traceback."""

import sys

# The top-level packages of the [server] extra that the command line imports.
SERVER_PACKAGES = frozenset(
    {"typer", "rich", "pydantic", "pydantic_settings", "sqlalchemy", "alembic", "fastapi"}
)


def main() -> None:
    try:
        from obsrelay.cli import main as command_line
    except ModuleNotFoundError as missing:
        if (missing.name or "").split(".")[0] not in SERVER_PACKAGES:
            raise
        sys.exit(
            f"obsrelay: the command line needs the server install ({missing.name} is "
            "missing): pip install 'obsrelay[server]'"
        )
    command_line()
