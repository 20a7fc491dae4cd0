"""Configuration and the command line, run as an operator would run them."""

import subprocess
from pathlib import Path

import pytest

from obsrelay.config import ConfigError, load_settings, parse_duration, unknown_env_names
from tests.servers import run_obsrelay, start_server


def obsrelay(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_obsrelay(*args, cwd=cwd, **env)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"OBSRELAY_PORT": "eighty"}, "OBSRELAY_PORT"),
        ({"OBSRELAY_PORT": "70000"}, "OBSRELAY_PORT"),
        ({"OBSRELAY_DATABASE_URL": "mysql://root@localhost/x"}, "OBSRELAY_DATABASE_URL"),
        ({"OBSRELAY_LOG_LEVEL": "loud"}, "OBSRELAY_LOG_LEVEL"),
        ({"OBSRELAY_JOB_EXPIRY": "soon"}, "OBSRELAY_JOB_EXPIRY"),
    ],
)
def test_a_wrong_value_stops_start_up_with_one_line(tmp_path, env, words):
    result = obsrelay("serve", cwd=tmp_path, **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert words in lines[0] and "configuration error" in lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_names_are_a_warning(tmp_path):
    result = obsrelay("db", "upgrade", cwd=tmp_path, OBSRELAY_PROT="9000")
    assert result.returncode == 0, result.stderr
    assert "OBSRELAY_PROT is not an obsrelay setting" in result.stderr
    assert (tmp_path / "var" / "obsrelay.db").exists()


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


def test_unreachable_database_is_one_line(tmp_path):
    result = obsrelay(
        "db",
        "upgrade",
        cwd=tmp_path,
        OBSRELAY_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
    )
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr


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
        assert (tmp_path / "var" / "obsrelay.db").exists()
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
