"""Settings: read once at start from OBSRELAY_* environment variables and an optional TOML file.

Precedence: environment variables, then the TOML file named by OBSRELAY_CONFIG (or
`--config`), then the defaults below. A wrong value stops start-up with one line
(`ConfigError`); an unknown OBSRELAY_* name is reported as a warning.
"""

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "OBSRELAY_"
# Names read elsewhere (tests, the CLI client, the config file path), not settings.
_KNOWN_OTHER_NAMES = {
    "CONFIG",
    "TEST_POSTGRES_URL",
    "TEST_REDIS_URL",
    "SERVER",
    "TOKEN",
    "SITE_KEY",
    "SITE",
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DATABASE_FILE = "obsrelay.db"
# Where data lived before the default became one absolute place (docs/adr/0006).
OLDER_DEFAULT_DIR = "var"


def default_data_dir() -> str:
    """`$XDG_DATA_HOME/obsrelay`, else `~/.local/share/obsrelay`: the same place for the
    server and every command, wherever they are run from."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "obsrelay")


# The kinds of alert (services/alerts.py); listed here so that settings need no import.
ALERT_EVENTS = ("offline", "online", "message", "failed", "overdue", "abandoned")


class ConfigError(Exception):
    """A setting is wrong; the message is one line for the operator."""


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like '90', '15m', '12h', '7d'."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '15m', '7d'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"{value!r} is not a duration; use seconds or e.g. '15m', '12h', '7d'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


class Settings(BaseSettings):
    """Everything an operator can set. See the configuration table in README.md."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    database_url: str = Field(
        "",
        description="sqlite:////abs/path.db, sqlite:///relative.db or postgresql://user@host/db "
        "(default: obsrelay.db in the data directory).",
    )
    log_level: str = Field("info", description="debug, info, warning or error.")
    log_requests: bool = Field(False, description="Log one line per HTTP request.")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Largest request body.")
    cors_origins: str = Field(
        "*", description="Origins browsers may call from: '*' or a comma-separated list."
    )
    job_expiry: float = Field(
        86400.0,
        description="An unread job older than this is never delivered and becomes EXPIRED "
        "(seconds or '12h', '1d'; 0 turns expiry off).",
    )
    site_offline_after: float = Field(
        60.0,
        ge=1,
        description="A site not heard from for this long is offline (seconds or '2m'; "
        "the site software polls every 3-15 s).",
    )
    job_overdue_grace: float = Field(
        60.0,
        ge=0,
        description="A running job is overdue when the site's own estimate of the time "
        "left, and then this long, pass without a report.",
    )
    job_abandoned_after: float = Field(
        600.0,
        gt=0,
        description="A job the site received is abandoned when it has reported nothing "
        "on it for this long.",
    )
    longpoll_recheck: float = Field(
        1.0,
        gt=0,
        le=25,
        description="A waiting claim (long-poll) looks for jobs again this often in "
        "seconds, in case a notification was lost.",
    )
    sweep_interval: float = Field(
        60.0, gt=0, description="Seconds between expiry and retention sweeps."
    )
    message_retention: float = Field(
        7 * 86400.0,
        gt=0,
        description="User status messages, and the datastream's replay log, are kept this long.",
    )
    bus_url: str = Field(
        "memory://", description="memory:// (one process) or redis://host:port/db (several)."
    )
    auth_mode: Literal["local", "oidc", "none"] = Field(
        "local", description="How user tokens are checked: local, oidc or none."
    )
    data_dir: str = Field(
        default_factory=default_data_dir,
        description="Where the default SQLite database and local mode's signing key are kept "
        "(default: $XDG_DATA_HOME/obsrelay or ~/.local/share/obsrelay).",
    )
    oidc_jwks_url: str | None = Field(None, description="The provider's JWKS URL (oidc mode).")
    oidc_issuer: str | None = Field(None, description="The tokens' required issuer (oidc).")
    oidc_audience: str | None = Field(None, description="The tokens' required audience (oidc).")
    oidc_authorize_url: str | None = Field(
        None, description="The provider's authorization endpoint: the console's login (oidc)."
    )
    oidc_token_url: str | None = Field(
        None, description="The provider's token endpoint, for the console's login (oidc)."
    )
    oidc_client_id: str | None = Field(
        None, description="The console's client id at the provider (a public client, PKCE)."
    )
    oidc_scope: str = Field("openid profile email", description="Scopes the console asks for.")
    oidc_roles_claim: str = Field(
        "roles", description="The claim holding the roles (a list, or an object with 'roles')."
    )
    oidc_userinfo_url: str | None = Field(
        None,
        description="The provider's userinfo endpoint: the user's name and roles come from "
        "its answer for each token, not from the token (oidc).",
    )
    oidc_refresh_seconds: float = Field(
        30.0, ge=0, description="Least time between two fetches of the JWKS for unknown keys."
    )
    public_read: bool = Field(
        True, description="Reading jobs, messages, datastream needs no token."
    )
    calendar_url: str | None = Field(None, description="The reservation calendar's base URL.")
    site_keys: Literal["off", "auto", "required"] = Field(
        "auto",
        description="Site calls: 'auto' (a site with an active key must use it, a site "
        "without one is served without), 'required' (every call needs the key) or 'off'.",
    )
    rate_jobs: float = Field(
        5.0, gt=0, description="Job submissions a second per client (user or address) per site."
    )
    rate_messages: float = Field(20.0, gt=0, description="Messages a second per client per site.")
    rate_events: float = Field(20.0, gt=0, description="Live events a second per client per site.")
    rate_updates: float = Field(
        20.0, gt=0, description="Job status reports a second per client per site."
    )
    rate_burst_seconds: float = Field(
        60.0, gt=0, description="Each limit allows bursts of this many seconds' worth."
    )
    rate_keyed_factor: float = Field(
        10.0, ge=1, description="Calls made with a site's key may go this many times faster."
    )
    new_sites_per_client: int = Field(
        5,
        ge=0,
        description="Sites one client address may create a day by calling as a site "
        "that does not exist (0: only the operator adds sites).",
    )
    max_sites: int = Field(
        1000, ge=1, description="Beyond this many sites, only the operator may add one."
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or networks of reverse proxies whose "
        "X-Forwarded-For names the client (e.g. 127.0.0.1, 10.0.0.0/8).",
    )
    metrics_clients: str = Field(
        "127.0.0.1, ::1",
        description="Comma-separated addresses or networks that may read /metrics "
        "(the client's address, forwarded by a trusted proxy); empty: nobody.",
    )
    alert_webhook_url: str | None = Field(
        None,
        description="Where alerts are posted (a Slack, Mattermost or ntfy webhook); "
        "unset: no alerts.",
    )
    alert_events: str = Field(
        "offline,online,message,failed,overdue,abandoned",
        description="The alerts wanted, comma-separated: offline, online (back after an "
        "offline alert), message, failed, overdue, abandoned.",
    )
    alert_level: str = Field("error", description="A message at or above this level is alerted.")
    alert_format: Literal["json", "text"] = Field(
        "json",
        description="'json': {\"text\": ...} (Slack, Mattermost); 'text': the text alone (ntfy).",
    )
    alert_offline_hold: float = Field(
        60.0,
        ge=0,
        description="A site offline is alerted once it has stayed offline this much "
        "longer: a shorter absence, such as a site flapping, sends nothing.",
    )
    max_sockets_per_client: int = Field(
        64, ge=1, description="Datastream connections one client address may hold."
    )
    max_waiting_per_client: int = Field(
        32, ge=0, description="Long-polls one client address may hold waiting at once."
    )
    max_waiting: int = Field(
        0,
        ge=0,
        description="Long-polls waiting at once in all (0: half the process's open-file limit).",
    )
    request_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds a client may take to send a request's headers, and its body.",
    )
    datastream_path: str = Field("/datastream", description="Path of the datastream websocket.")
    stream_buffer_bytes: int = Field(
        512 * 1024,
        ge=4096,
        description="Bytes a websocket client may fall behind before it is closed (1013).",
    )
    stream_batch_ms: int = Field(
        40,
        ge=0,
        le=1000,
        description="Under load, a site's stream events are sent batched: after a send, "
        "the next waits twice as long as the send took, at most this long; the first "
        "after a quiet spell goes out at once (0: never held).",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: str) -> str:
        # A relative directory is taken from where it was given, once: every later use
        # (the key, the database) then names the same place.
        # Empty (OBSRELAY_DATA_DIR=) is the default, as for the database URL.
        return str(Path(value or default_data_dir()).expanduser().absolute())

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value  # the default, in the data directory
        if not value.startswith(("sqlite:", "postgresql:", "postgres:")):
            raise ValueError(
                "must start with sqlite:/// or postgresql:// (e.g. postgresql://user@host/db)"
            )
        if value.startswith("sqlite:") and value.removeprefix("sqlite:").strip("/") == "":
            raise ValueError("names no database file (e.g. sqlite:////var/lib/obsrelay/x.db)")
        try:
            urlsplit(value).port  # noqa: B018  # a port that is not a number raises here
        except ValueError:
            raise ValueError("has a port that is not a number") from None
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("alert_events")
    @classmethod
    def _check_alert_events(cls, value: str) -> str:
        unknown = set(_comma_list(value)) - set(ALERT_EVENTS)
        if unknown:
            known = ", ".join(ALERT_EVENTS)
            raise ValueError(f"unknown alert {', '.join(sorted(unknown))}; the alerts are {known}")
        return value

    @field_validator("alert_level", "log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError("must be one of debug, info, warning, error, critical")
        return level

    @model_validator(mode="before")
    @classmethod
    def _database_in_the_data_dir(cls, values: Any) -> Any:
        if isinstance(values, dict) and not values.get("database_url"):
            data_dir = Path(values.get("data_dir") or default_data_dir()).expanduser()
            values = {**values, "database_url": f"sqlite:///{data_dir.absolute() / DATABASE_FILE}"}
        return values

    @model_validator(mode="after")
    def _check_oidc(self) -> "Settings":
        if self.auth_mode == "oidc":
            missing = [
                f"OBSRELAY_{name.upper()}"
                for name in ("oidc_jwks_url", "oidc_issuer", "oidc_audience")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"oidc mode needs {', '.join(missing)}")
        return self

    @field_validator("bus_url")
    @classmethod
    def _check_bus_url(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("must be memory:// or redis://host:port/db")
        return value

    @field_validator("datastream_path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.startswith("/") or " " in value:
            raise ValueError("must be a URL path starting with '/', e.g. /datastream")
        return value

    @field_validator("site_keys", mode="before")
    @classmethod
    def _old_site_keys_name(cls, value: object) -> object:
        # 'optional' (anonymous calls passed even for a site with a key) became 'auto'.
        return "auto" if value == "optional" else value

    @field_validator("trusted_proxies", "metrics_clients")
    @classmethod
    def _check_networks(cls, value: str) -> str:
        for part in _comma_list(value):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not an address or network") from None
        return value

    @field_validator(
        "job_expiry",
        "sweep_interval",
        "message_retention",
        "site_offline_after",
        "job_overdue_grace",
        "job_abandoned_after",
        "alert_offline_hold",
        mode="before",
    )
    @classmethod
    def _parse_duration(cls, value: object) -> float:
        return parse_duration(value)

    @property
    def cors_origin_list(self) -> list[str]:
        return _comma_list(self.cors_origins)

    @property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return _networks(self.trusted_proxies)

    @property
    def metrics_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return _networks(self.metrics_clients)


def _networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(part, strict=False) for part in _comma_list(value)]


def _comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def unknown_env_names(environ: dict[str, str] | None = None) -> list[str]:
    """OBSRELAY_* variables that no setting reads (usually a typo)."""
    environ = dict(os.environ) if environ is None else environ
    known = {name.upper() for name in Settings.model_fields} | _KNOWN_OTHER_NAMES
    return sorted(
        name
        for name in environ
        if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX) :] not in known
    )


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, the TOML file and explicit overrides (the CLI's flags).

    Raises ConfigError with one line that names the bad setting.
    """
    file_values: dict[str, Any] = {}
    path = config_file or os.environ.get(f"{ENV_PREFIX}CONFIG")
    if path:
        try:
            with open(path, "rb") as handle:
                file_values = tomllib.load(handle)
        except OSError as error:
            raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
        file_values = _paths_from(Path(path).parent, {k.lower(): v for k, v in file_values.items()})
    # Environment variables beat the file: drop file values that the environment sets.
    for name in list(file_values):
        if f"{ENV_PREFIX}{name.upper()}" in os.environ:
            del file_values[name]
    values = {**file_values, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings(**values)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "settings"
        where = f"{ENV_PREFIX}{name.upper()}"
        if first["type"] == "extra_forbidden":
            raise ConfigError(f"unknown setting {name!r} in config file {path}") from None
        message = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:  # a rule over several settings
            raise ConfigError(message) from None
        raise ConfigError(f"{where}: {message} (got {_shown(name, first.get('input'))})") from None


def _paths_from(directory: Path, values: dict[str, Any]) -> dict[str, Any]:
    """A config file's relative paths (data_dir, a SQLite file) taken from the file's own
    directory, so that the file means the same wherever a command is run from."""
    data_dir = values.get("data_dir")
    if isinstance(data_dir, str) and not Path(data_dir).expanduser().is_absolute():
        values["data_dir"] = str(directory.absolute() / data_dir)
    url = values.get("database_url")
    if isinstance(url, str) and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and not relative.startswith(":memory:"):
            values["database_url"] = f"sqlite:///{directory.absolute() / relative}"
    return values


def _shown(name: str, value: object) -> str:
    """A setting's value as an error may show it: never a secret (the line may go to a
    log, such as systemd's journal)."""
    if name == "alert_webhook_url":
        return "a URL, not shown: it is a secret"
    if name == "database_url" and isinstance(value, str):
        return repr(database_shown(value))
    return repr(value)


def database_shown(url: str) -> str:
    """The database URL without its password, as the logs and the CLI may show it."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def older_default_data(settings: Settings, cwd: Path | None = None) -> Path | None:
    """`./var`, when it holds data of the older default (a database or a signing key) and
    this run does not use it: the operator is told how to keep using it."""
    if "data_dir" in settings.model_fields_set:
        return None
    older = (cwd or Path.cwd()) / OLDER_DEFAULT_DIR
    held = [older / name for name in (DATABASE_FILE, "signing-key.pem")]
    if older.absolute() == Path(settings.data_dir) or not any(p.exists() for p in held):
        return None
    return older


def alert_events(settings: Settings) -> frozenset[str]:
    return frozenset(_comma_list(settings.alert_events))
