"""The `obsrelay` command: serve the relay and manage its database."""

import asyncio
import logging
import sys
from typing import Annotated

import typer

from obsrelay.config import ConfigError, Settings, load_settings, unknown_env_names

app = typer.Typer(help="obsrelay: commands to robotic observatories, status messages back.")
db_app = typer.Typer(help="Manage the database.")
app.add_typer(db_app, name="db")

ConfigOption = Annotated[
    str | None, typer.Option("--config", help="A TOML file of settings (or OBSRELAY_CONFIG).")
]


def _settings(config: str | None, **overrides: object) -> Settings:
    for name in unknown_env_names():
        typer.echo(f"warning: {name} is not an obsrelay setting; it is ignored.", err=True)
    try:
        return load_settings(config, **overrides)
    except ConfigError as error:
        typer.echo(f"obsrelay: configuration error: {error}", err=True)
        raise typer.Exit(2) from None


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port to listen on.")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the obsrelay server (creates or migrates the database first)."""
    import uvicorn

    from obsrelay.api.wsframes import FrameWriterProtocol
    from obsrelay.app import create_app

    settings = _settings(config, host=host, port=port)
    _configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        # Websocket keep-alive: a ping every 20 s keeps idle datastream connections open
        # through proxies; a client that does not answer within 20 s is dropped.
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        ws=FrameWriterProtocol,
        # Compression would have to run per connection; the datastream encodes a frame
        # once for all of them (see api/wsframes.py).
        ws_per_message_deflate=False,
    )


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create the schema or migrate it to the newest version."""
    from obsrelay.store.database import open_database

    settings = _settings(config)
    _configure_logging(settings.log_level)

    async def run() -> None:
        db = open_database(settings.database_url)
        try:
            await db.upgrade()
        finally:
            await db.close()

    try:
        asyncio.run(run())
    except OSError as error:
        typer.echo(f"obsrelay: cannot reach the database: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Database is up to date: {settings.database_url}")


def main() -> None:
    app()
