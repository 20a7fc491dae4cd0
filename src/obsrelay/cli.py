"""The `obsrelay` command: serve the relay and manage its database."""

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from obsrelay.cli_remote import jobs_app, logs_app
from obsrelay.config import ConfigError, Settings, load_settings, unknown_env_names

if TYPE_CHECKING:
    from obsrelay.auth.sitekeys import SiteKeys
    from obsrelay.store.database import Database

app = typer.Typer(help="obsrelay: commands to robotic observatories, status messages back.")
db_app = typer.Typer(help="Manage the database.")
app.add_typer(db_app, name="db")
tokens_app = typer.Typer(help="User tokens (local auth mode).")
app.add_typer(tokens_app, name="tokens")
sites_app = typer.Typer(help="Site keys: the credentials of the observatories' software.")
app.add_typer(sites_app, name="sites")
app.add_typer(jobs_app, name="jobs")
app.add_typer(logs_app, name="logs")

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
    app = create_app(settings)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Long-polls end now, not after their wait: a restart takes no 25 s.
            waiters = getattr(app.state, "waiters", None)
            if waiters is not None:
                waiters.close_threadsafe()
            super().handle_exit(sig, frame)

    server_config = uvicorn.Config(
        app,
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
    Server(server_config).run()


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


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option("--user", help="The user's id (the token's sub).")],
    name: Annotated[str, typer.Option("--name", help="The name shown for the user.")],
    role: Annotated[list[str] | None, typer.Option("--role", help="A role; repeatable.")] = None,
    expires: Annotated[str, typer.Option(help="Lifetime: 3600, 12h, 30d ...")] = "30d",
    config: ConfigOption = None,
) -> None:
    """Issue a user token signed with this server's local key; printed on the last line."""
    from obsrelay.auth.local import LocalSigner
    from obsrelay.config import parse_duration

    settings = _settings(config)
    if settings.auth_mode != "local":
        typer.echo(
            f"warning: OBSRELAY_AUTH_MODE is {settings.auth_mode}; the server will not "
            "accept local tokens.",
            err=True,
        )
    try:
        lifetime = parse_duration(expires)
    except ValueError as error:
        typer.echo(f"obsrelay: --expires: {error}", err=True)
        raise typer.Exit(2) from None
    signer = LocalSigner(Path(settings.data_dir))
    typer.echo(f"Token for {name} ({user}), roles: {', '.join(role or []) or 'none'}:")
    typer.echo(signer.issue(user, name, list(role or []), lifetime))


def _site_keys(config: str | None) -> tuple["Database", "SiteKeys"]:
    from obsrelay.auth.sitekeys import SiteKeys
    from obsrelay.store.database import open_database

    settings = _settings(config)
    db = open_database(settings.database_url)
    return db, SiteKeys(db)


def _run(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        asyncio.run(work())
    except OSError as error:
        typer.echo(f"obsrelay: cannot reach the database: {error}", err=True)
        raise typer.Exit(1) from None


@sites_app.command("add-key")
def sites_add_key(site: str, config: ConfigOption = None) -> None:
    """Make a new key for SITE; it is printed once, alone on the last line."""
    from obsrelay.domain.errors import InvalidInput
    from obsrelay.domain.jobs import validate_site

    try:
        validate_site(site, "SITE")
    except InvalidInput as error:
        typer.echo(f"obsrelay: {error.message}", err=True)
        raise typer.Exit(2) from None
    db, keys = _site_keys(config)

    async def add() -> None:
        try:
            await db.upgrade()
            key = await keys.add(site)
        finally:
            await db.close()
        typer.echo(f"New key for {site} (only its hash is stored; keep it safe):")
        typer.echo(key)

    _run(add)


@sites_app.command("list")
def sites_list(
    site: Annotated[str | None, typer.Argument(help="Only this site.")] = None,
    config: ConfigOption = None,
) -> None:
    """List the site keys (ids only) and whether they are revoked."""
    db, keys = _site_keys(config)

    async def show() -> None:
        try:
            await db.upgrade()
            found = await keys.list(site)
        finally:
            await db.close()
        if not found:
            typer.echo("No site keys.")
        for key in found:
            state = "revoked" if key.revoked_ms else "active"
            typer.echo(f"{key.site}\t{key.key_id}\t{state}")

    _run(show)


@sites_app.command("revoke-key")
def sites_revoke_key(site: str, key_id: str, config: ConfigOption = None) -> None:
    """Revoke a key of SITE by its id (see `sites list`); it stops working at once."""
    db, keys = _site_keys(config)

    async def revoke() -> None:
        try:
            await db.upgrade()
            done = await keys.revoke(site, key_id)
        finally:
            await db.close()
        if not done:
            typer.echo(f"obsrelay: {site} has no active key {key_id}.", err=True)
            raise typer.Exit(1)
        typer.echo(f"Revoked key {key_id} of {site}.")

    _run(revoke)


def main() -> None:
    app()
