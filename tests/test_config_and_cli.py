"""Configuration and the command line, run as an operator would run them."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from obsrelay.config import (
    ConfigError,
    database_shown,
    load_settings,
    parse_duration,
    unknown_env_names,
)
from tests.commands import obsrelay_command, run_obsrelay
from tests.helpers import newjob_body, raw
from tests.servers import start_server


def obsrelay(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A command run from `cwd`, in this process (tests/commands.py)."""
    return obsrelay_command(*args, cwd=cwd, **env)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"OBSRELAY_PORT": "eighty"}, "OBSRELAY_PORT"),
        ({"OBSRELAY_PORT": "70000"}, "OBSRELAY_PORT"),
        ({"OBSRELAY_DATABASE_URL": "mysql://root@localhost/x"}, "OBSRELAY_DATABASE_URL"),
        ({"OBSRELAY_LOG_LEVEL": "loud"}, "OBSRELAY_LOG_LEVEL"),
        ({"OBSRELAY_JOB_EXPIRY": "soon"}, "OBSRELAY_JOB_EXPIRY"),
        ({"OBSRELAY_DATABASE_URL": "postgresql://u:pw-1@db:port/x"}, "port that is not a number"),
        ({"OBSRELAY_DATABASE_URL": "sqlite:///"}, "names no database file"),
        ({"OBSRELAY_ALERT_WEBHOOK_URL": "ftp://pw-1@hooks"}, "OBSRELAY_ALERT_WEBHOOK_URL"),
    ],
)
def test_a_wrong_value_stops_start_up_with_one_line(tmp_path, env, words):
    result = obsrelay("serve", cwd=tmp_path, **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert words in lines[0] and "configuration error" in lines[0]
    assert "Traceback" not in result.stderr
    assert "pw-1" not in result.stderr  # secrets are not shown, even in a refusal


def test_version(tmp_path):
    from obsrelay import __version__

    # The entry point too: `python -m obsrelay` in a process of its own.
    result = run_obsrelay("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"obsrelay {__version__}"


def test_a_command_in_this_process_has_its_own_output_alone(tmp_path):
    """What another thread prints while a command runs in this process (a fake server's
    complaint about a client that hung up) is not the command's output."""
    stop = threading.Event()

    def chatter() -> None:
        while not stop.wait(0.0005):
            print("not the command's", file=sys.stderr)

    other = threading.Thread(target=chatter)
    other.start()
    try:
        results = [obsrelay("db", "upgrade", "--bogus", cwd=tmp_path) for _ in range(5)]
    finally:
        stop.set()
        other.join()
    for result in results:
        assert result.returncode == 2
        assert "--bogus" in result.stderr
        assert "not the command's" not in result.stderr + result.stdout


def test_unknown_names_are_a_warning(tmp_path):
    home = tmp_path / "data-home"
    result = obsrelay("db", "upgrade", cwd=tmp_path, OBSRELAY_PROT="9000", XDG_DATA_HOME=str(home))
    assert result.returncode == 0, result.stderr
    assert "OBSRELAY_PROT is not an obsrelay setting" in result.stderr
    assert (home / "obsrelay" / "obsrelay.db").exists()


def test_one_data_directory_wherever_a_command_is_run_from(tmp_path, site):
    """The server and the commands, each run from a folder of its own, find one
    database and one signing key (before, `tokens create` run elsewhere made a new key,
    and the server refused its token)."""
    home = str(tmp_path / "data-home")
    serving, elsewhere = tmp_path / "serving", tmp_path / "elsewhere"
    serving.mkdir()
    elsewhere.mkdir()
    operator = {"XDG_DATA_HOME": home, "OBSRELAY_AUTH_MODE": "local"}
    server = start_server(
        None, serving, OBSRELAY_DATA_DIR="", XDG_DATA_HOME=home, OBSRELAY_AUTH_MODE="local"
    )
    try:
        assert server.database_url == f"sqlite:///{home}/obsrelay/obsrelay.db"
        assert obsrelay("sites", "add", site, cwd=elsewhere, **operator).returncode == 0
        created = obsrelay(
            "tokens", "create", "--user", "ada", "--name", "Ada", cwd=elsewhere, **operator
        )
        assert created.returncode == 0, created.stderr
        assert f"Signed with the key in {home}/obsrelay/signing-key.pem" in created.stderr
        token = created.stdout.strip().splitlines()[-1]
        answer = server.http.post(
            "/jobs/newjob",
            content=raw(newjob_body(site)),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        assert f"data directory {home}/obsrelay" in server.log()
    finally:
        server.stop()


def test_relative_paths_in_a_config_file_are_the_files_own(tmp_path, monkeypatch):
    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "obsrelay.toml"
    config.write_text('data_dir = "data"\ndatabase_url = "sqlite:///db/relay.db"\n')
    monkeypatch.chdir(tmp_path)
    settings = load_settings(config)
    assert settings.data_dir == str(folder / "data")
    assert settings.database_url == f"sqlite:///{folder / 'db' / 'relay.db'}"
    # From the environment, a relative directory is the caller's; it is made absolute.
    monkeypatch.setenv("OBSRELAY_DATA_DIR", "mine")
    settings = load_settings()
    assert settings.data_dir == str(tmp_path / "mine")
    assert settings.database_url == f"sqlite:///{tmp_path / 'mine' / 'obsrelay.db'}"


def test_data_left_by_the_older_default_is_pointed_out(tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "obsrelay.db").write_bytes(b"")
    home = str(tmp_path / "data-home")
    result = obsrelay("db", "upgrade", cwd=tmp_path, XDG_DATA_HOME=home)
    assert result.returncode == 0, result.stderr
    assert f"OBSRELAY_DATA_DIR={tmp_path / 'var'}" in result.stderr
    chosen = obsrelay(
        "db", "upgrade", cwd=tmp_path, XDG_DATA_HOME=home, OBSRELAY_DATA_DIR=str(tmp_path / "var")
    )
    assert chosen.returncode == 0 and "warning" not in chosen.stderr, chosen.stderr


def test_the_database_password_is_never_shown(postgres_url, tmp_path):
    with_password = make_url(postgres_url).set(password="s3cret-pw").render_as_string(False)
    assert database_shown(with_password).count("***") == 1
    assert "s3cret-pw" not in database_shown(with_password)
    result = obsrelay("db", "upgrade", cwd=tmp_path, OBSRELAY_DATABASE_URL=with_password)
    assert result.returncode == 0, result.stderr  # trust authentication: any password
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert ":***@" in result.stdout


def test_toml_file_and_environment_precedence(tmp_path, monkeypatch):
    config = tmp_path / "obsrelay.toml"
    config.write_text('port = 9100\nhost = "0.0.0.0"\njob_expiry = "12h"\n')
    monkeypatch.setenv("OBSRELAY_PORT", "9200")
    settings = load_settings(config)
    assert settings.port == 9200  # the environment wins
    assert settings.host == "0.0.0.0"
    assert settings.job_expiry == 12 * 3600
    config.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_settings(config)
    config.write_text("port = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")


def test_db_upgrade_with_a_config_file(tmp_path):
    target = tmp_path / "data" / "relay.db"
    (tmp_path / "c.toml").write_text(f'database_url = "sqlite:///{target}"\n')
    result = obsrelay("db", "upgrade", "--config", "c.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert target.exists()
    again = obsrelay("db", "upgrade", "--config", "c.toml", cwd=tmp_path)
    assert again.returncode == 0


@pytest.mark.parametrize("command", [("db", "upgrade"), ("serve",)])
def test_unreachable_database_is_one_line(tmp_path, command):
    result = obsrelay(
        *command, cwd=tmp_path, OBSRELAY_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"
    )
    assert result.returncode == 1
    assert said(result) == [
        "obsrelay: cannot reach the database: [Errno 111] Connect call failed ('127.0.0.1', 1)"
    ]


def test_a_database_that_refuses_is_one_line(tmp_path, postgres_url):
    missing = make_url(postgres_url).set(database="no_such_database").render_as_string(False)
    result = obsrelay("serve", cwd=tmp_path, OBSRELAY_DATABASE_URL=missing)
    assert result.returncode == 1
    assert said(result) == [
        'obsrelay: cannot use the database: database "no_such_database" does not exist'
    ]


def said(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What a command told its user on stderr, without the log's INFO lines (alembic's)."""
    return [line for line in result.stderr.splitlines() if line and " INFO " not in line]


def test_durations():
    assert parse_duration("90") == 90
    assert parse_duration("15m") == 900
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration(3) == 3
    for bad in ("-1", "seven", True, "1y"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_unknown_env_names():
    assert unknown_env_names({"OBSRELAY_PORT": "1", "OBSRELAY_PROT": "2", "HOME": "/"}) == [
        "OBSRELAY_PROT"
    ]


def test_serve_on_an_empty_directory_just_works(tmp_path):
    server = start_server(None, tmp_path)
    try:
        assert server.http.get("/readyz").json()["status"] == "ok"
        assert (tmp_path / "var" / "obsrelay.db").exists()  # OBSRELAY_DATA_DIR=var
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("status", "left"), [("EXPOSING", 30), ("COMPLETE", None), ("EXPIRED", None)]
)
def test_the_cli_counts_down_only_unfinished_jobs(status, left):
    import time

    from obsrelay.cli_remote import _seconds_left
    from obsrelay.client.models import Job, QueueStatus

    now_ms = int(time.time() * 1000)
    state = QueueStatus(status, 30, now_ms)
    job = Job("U", "s", now_ms, "camera", "c1", "expose", {}, {}, "u", "u", state, state)
    assert _seconds_left(job) == left
