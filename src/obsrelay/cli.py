"""The `obsrelay` command: serve the relay and manage its database."""

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from obsrelay import __version__, cli_output
from obsrelay.cli_remote import (
    DEFAULT_SERVER,
    JsonOption,
    ServerOption,
    TokenOption,
    jobs_app,
    logs_app,
    print_json,
    show_sites,
)
from obsrelay.config import (
    ConfigError,
    Settings,
    database_shown,
    load_settings,
    older_default_data,
    unknown_env_names,
)

if TYPE_CHECKING:
    from obsrelay.auth.sitekeys import SiteKeys
    from obsrelay.store.database import Database

app = typer.Typer(help="obsrelay: commands to robotic observatories, status messages back.")
db_app = typer.Typer(help="Manage the database.")
app.add_typer(db_app, name="db")
tokens_app = typer.Typer(help="User tokens (local auth mode).")
app.add_typer(tokens_app, name="tokens")
sites_app = typer.Typer(
    help="Sites, and their keys: the credentials of their software. Without a command: "
    "whether each site's software is alive, from a running server.",
    invoke_without_command=True,
)
app.add_typer(sites_app, name="sites")
alerts_app = typer.Typer(help="Alerts: webhook notifications (OBSRELAY_ALERT_*).")
app.add_typer(alerts_app, name="alerts")
app.add_typer(jobs_app, name="jobs")
app.add_typer(logs_app, name="logs")


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"obsrelay {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """obsrelay: commands to robotic observatories, status messages back."""


ConfigOption = Annotated[
    str | None, typer.Option("--config", help="A TOML file of settings (or OBSRELAY_CONFIG).")
]


def _settings(config: str | None, **overrides: object) -> Settings:
    for name in unknown_env_names():
        cli_output.warn(f"{name} is not an obsrelay setting; it is ignored.")
    try:
        settings = load_settings(config, **overrides)
    except ConfigError as error:
        raise cli_output.fail(f"configuration error: {error}", 2) from None
    older = older_default_data(settings)
    if older is not None:
        cli_output.warn(
            f"{older} holds data of an older obsrelay, which kept it in ./var; "
            f"this uses {settings.data_dir}. To keep using {older}, set "
            f"OBSRELAY_DATA_DIR={older}."
        )
    return settings


def _configure_logging(level: str) -> None:
    from obsrelay.logs import configure_logging

    configure_logging(level)


def _raise_open_file_limit() -> None:
    """Raises this process's open-file soft limit to its hard limit.

    Every connection takes a descriptor: at the usual soft limit of 1,024, a few
    hundred waiting long-polls and websockets would leave none for anybody else.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            logging.getLogger("obsrelay").warning("cannot raise the open-file limit: %s", error)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port to listen on.")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the obsrelay server (creates or migrates the database first)."""
    # A wrong setting is told before the server's second of imports.
    settings = _settings(config, host=host, port=port)

    import uvicorn

    from obsrelay.api.httpguard import guarded_protocol
    from obsrelay.api.streaming import MAX_CLIENT_FRAME_BYTES
    from obsrelay.api.wsframes import FrameWriterProtocol
    from obsrelay.app import create_app

    _configure_logging(settings.log_level)
    # The schema first, here: a database that is wrong or away is one line, not the
    # traceback uvicorn logs for an application whose start-up failed.
    _run(lambda: _upgraded(settings.database_url))
    _raise_open_file_limit()  # before the app reads it (OBSRELAY_MAX_WAITING=0)
    app = create_app(settings)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Long-polls end now, not after their wait: a restart takes no 25 s.
            running = getattr(app.state, "services", None)
            if running is not None:
                running.waiters.close_threadsafe()
            super().handle_exit(sig, frame)

    server_config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Logging is set up above, through the filter that takes secrets out.
        log_config=None,
        access_log=False,
        server_header=False,
        # The client's address behind a proxy is found by obsrelay's own middleware,
        # from OBSRELAY_TRUSTED_PROXIES only.
        proxy_headers=False,
        http=guarded_protocol(settings.request_timeout),
        # Websocket keep-alive: a ping every 20 s keeps idle datastream connections open
        # through proxies; a client that does not answer within 20 s is dropped.
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        ws=FrameWriterProtocol,
        # Compression would have to run per connection; the datastream encodes a frame
        # once for all of them (see api/wsframes.py).
        ws_per_message_deflate=False,
        # The browser's one frame is tiny; a larger one closes the socket with 1009.
        ws_max_size=MAX_CLIENT_FRAME_BYTES,
    )
    Server(server_config).run()


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Create the schema or migrate it to the newest version."""
    settings = _settings(config)
    _configure_logging("warning" if as_json else settings.log_level)

    _run(lambda: _upgraded(settings.database_url))
    shown = database_shown(settings.database_url)
    if as_json:
        print_json({"database": shown, "up_to_date": True})
    else:
        typer.echo(f"Database is up to date: {shown}")


async def _upgraded(database_url: str) -> None:
    """Creates or migrates the schema (safe from several processes at once)."""
    from obsrelay.store.database import open_database, outage_log

    # A database that does not answer is said once, by the caller, in one line: not
    # also as the running server's outage ("answering 503 until it is back").
    outage_log.disabled = True
    db = open_database(database_url)
    try:
        await db.upgrade()
    finally:
        await db.close()
        outage_log.disabled = False


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option("--user", help="The user's id (the token's sub).")],
    name: Annotated[str, typer.Option("--name", help="The name shown for the user.")],
    role: Annotated[list[str] | None, typer.Option("--role", help="A role; repeatable.")] = None,
    expires: Annotated[str, typer.Option(help="Lifetime: 3600, 12h, 30d ...")] = "30d",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a user token signed with this server's local key; printed on the last line."""
    from obsrelay.auth.local import LocalSigner
    from obsrelay.config import parse_duration

    settings = _settings(config)
    if settings.auth_mode != "local":
        cli_output.warn(
            f"OBSRELAY_AUTH_MODE is {settings.auth_mode}; the server will not accept local tokens."
        )
    try:
        lifetime = parse_duration(expires)
    except ValueError as error:
        raise cli_output.fail(f"--expires: {error}", 2) from None
    signer = LocalSigner(Path(settings.data_dir))
    roles = list(role or [])
    token = signer.issue(user, name, roles, lifetime)
    if as_json:
        print_json(
            {
                "token": token,
                "user": user,
                "name": name,
                "roles": roles,
                "expires_in_seconds": lifetime,
                "key_file": str(signer.key_path),
                "key_made_now": signer.made,
            }
        )
        return
    if signer.made:
        # A server already running on another data directory will refuse this token.
        typer.echo(f"Signed with a new key, made now: {signer.key_path}", err=True)
    else:
        typer.echo(f"Signed with the key in {signer.key_path}", err=True)
    typer.echo(f"Token for {name} ({user}), roles: {', '.join(roles) or 'none'}:")
    typer.echo(token)


def _site_keys(config: str | None) -> tuple["Database", "SiteKeys"]:
    from obsrelay.auth.sitekeys import SiteKeys
    from obsrelay.store.database import open_database

    settings = _settings(config)
    db = open_database(settings.database_url)
    return db, SiteKeys(db)


def _run(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from obsrelay.store.database import DatabaseUnavailable

    try:
        asyncio.run(work())
    except (OSError, DatabaseUnavailable) as error:
        raise cli_output.fail(f"cannot reach the database: {_first_line(error)}") from None
    except SQLAlchemyError as error:
        # It answered, and refused: no such database or user, a wrong password.
        raise cli_output.fail(f"cannot use the database: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    """The driver's own sentence of a database error, without SQLAlchemy's wrapping."""
    cause = error.__cause__ or error
    text = str(getattr(cause, "orig", None) or cause)
    return text.splitlines()[0] if text else "no answer"


def _site_name(site: str) -> str:
    from obsrelay.domain.errors import InvalidInput
    from obsrelay.domain.jobs import validate_site

    try:
        return validate_site(site, "SITE")
    except InvalidInput as error:
        raise cli_output.fail(error.message, 2) from None


@sites_app.callback()
def sites_overview(
    context: typer.Context,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every site of a running server: online or OFFLINE since when, last seen, unread
    and held jobs, overdue and abandoned ones, the last message. Offline sites first."""
    if context.invoked_subcommand is None:
        show_sites(server, token, as_json)


@sites_app.command("add")
def sites_add(
    site: str,
    key: Annotated[bool, typer.Option("--key", help="Also make a key for it.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register SITE, so that jobs may be submitted to it (with --key, make its key too)."""
    from obsrelay.services.sites import SiteRegistry

    _site_name(site)
    db, keys = _site_keys(config)

    async def add() -> None:
        try:
            await db.upgrade()
            added = await SiteRegistry(db).register(site, "operator")
            new_key = await keys.add(site) if key else None
        finally:
            await db.close()
        if as_json:
            print_json({"site": site, "added": added, "key": new_key})
            return
        typer.echo(f"Added site {site}." if added else f"Site {site} exists already.")
        if new_key:
            typer.echo(f"New key for {site} (only its hash is stored; keep it safe):")
            typer.echo(new_key)

    _run(add)


@sites_app.command("add-key")
def sites_add_key(site: str, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Make a new key for SITE (registering it); printed once, alone on the last line.

    From then on, calls as SITE must carry a key (OBSRELAY_SITE_KEYS=auto)."""
    _site_name(site)
    db, keys = _site_keys(config)

    async def add() -> None:
        try:
            await db.upgrade()
            key = await keys.add(site)
        finally:
            await db.close()
        if as_json:
            print_json({"site": site, "key": key})
            return
        typer.echo(f"New key for {site} (only its hash is stored; keep it safe):")
        typer.echo(key)

    _run(add)


@sites_app.command("list")
def sites_list(
    site: Annotated[str | None, typer.Argument(help="Only this site.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the sites and their keys (ids only), and whether each key is revoked."""
    from obsrelay.services.sites import SiteRegistry

    db, keys = _site_keys(config)

    async def show() -> None:
        try:
            await db.upgrade()
            names = [name for name in await SiteRegistry(db).names() if site in (None, name)]
            found = await keys.list(site)
        finally:
            await db.close()
        if as_json:
            listed = [
                {
                    "site": name,
                    "keys": [
                        {"id": key.key_id, "active": not key.revoked_ms}
                        for key in found
                        if key.site == name
                    ],
                }
                for name in names
            ]
            print_json(listed)
            return
        if not names:
            typer.echo("No sites.")
        for name in names:
            its_keys = [key for key in found if key.site == name]
            if not its_keys:
                typer.echo(f"{name}\t-\tno key")
            for key in its_keys:
                state = "revoked" if key.revoked_ms else "active"
                typer.echo(f"{name}\t{key.key_id}\t{state}")

    _run(show)


@sites_app.command("revoke-key")
def sites_revoke_key(
    site: str, key_id: str, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Revoke a key of SITE by its id (see `sites list`); it stops working at once."""
    db, keys = _site_keys(config)

    async def revoke() -> None:
        try:
            await db.upgrade()
            done = await keys.revoke(site, key_id)
        finally:
            await db.close()
        if not done:
            raise cli_output.fail(f"{site} has no active key {key_id}.")
        if as_json:
            print_json({"site": site, "key_id": key_id, "revoked": True})
        else:
            typer.echo(f"Revoked key {key_id} of {site}.")

    _run(revoke)


@alerts_app.command("test")
def alerts_test(
    url: Annotated[
        str | None, typer.Option(help="Another webhook URL than OBSRELAY_ALERT_WEBHOOK_URL.")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a test alert to the configured webhook, as the server sends its alerts."""
    import socket

    from obsrelay.services.alerts import Alert, Alerts

    settings = _settings(config)
    target = url or settings.alert_webhook_url
    if not target:
        raise cli_output.fail("no webhook: set OBSRELAY_ALERT_WEBHOOK_URL, or give --url.", 2)
    alerts = Alerts(target, plain_text=settings.alert_format == "text", retry_seconds=0.5)
    alert = Alert(
        "test", "-", f"obsrelay on {socket.gethostname()}: a test alert; alerts reach you.", {}
    )
    if not asyncio.run(alerts.deliver(alert)):
        raise cli_output.fail("the webhook did not take the test alert (see above).")
    if as_json:
        print_json({"sent": True})
    else:
        typer.echo("Sent a test alert.")


def main() -> None:
    sys.exit(cli_output.run(app, sys.argv[1:]))
