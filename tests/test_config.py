import os
import stat
from pathlib import Path

import pytest

from tidings.config import load_settings, parse_smtp_url
from tidings.errors import ConfigError


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)
    data = tmp_path / "data"
    monkeypatch.setenv("TIDINGS_DATA_DIR", str(data))
    return data


def test_defaults_use_sqlite_in_data_dir_and_generate_a_secret_once(clean_env: Path) -> None:
    settings = load_settings()
    assert settings.resolved_database_url == f"sqlite:///{(clean_env / 'tidings.db').resolve()}"
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.smtp is None
    key_file = clean_env / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(settings.secret) >= 32
    assert load_settings().secret == settings.secret  # never regenerated


def test_explicit_secret_is_used_and_no_file_written(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_SECRET_KEY", "k" * 40)
    assert load_settings().secret == "k" * 40
    assert not (clean_env / "secret_key").exists()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TIDINGS_SMTP_URL", "http://mail.example.org", "TIDINGS_SMTP_URL: scheme must be one of"),
        ("TIDINGS_SMTP_URL", "smtp://", "TIDINGS_SMTP_URL: a host is required"),
        ("TIDINGS_SMTP_URL", "smtp://host:99999", "TIDINGS_SMTP_URL: the port must be"),
        ("TIDINGS_BASE_URL", "example.org", "TIDINGS_BASE_URL: must be an absolute"),
        ("TIDINGS_DATABASE_URL", "mysql://x/y", "TIDINGS_DATABASE_URL: must be a postgresql"),
        ("TIDINGS_SECRET_KEY", "short", "TIDINGS_SECRET_KEY: must be at least 32"),
        ("TIDINGS_FEED_TIMEOUT_SECONDS", "soon", "TIDINGS_FEED_TIMEOUT_SECONDS:"),
    ],
)
def test_bad_values_give_one_line_naming_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_smtp_urls_parse_with_credentials_and_default_ports() -> None:
    target = parse_smtp_url("smtp+starttls://user%40x:p%3Ass@mail.example.org")
    assert (target.host, target.port, target.security) == ("mail.example.org", 587, "starttls")
    assert (target.username, target.password) == ("user@x", "p:ss")
    assert parse_smtp_url("smtps://mail.example.org").port == 465
    assert parse_smtp_url("smtp://127.0.0.1:2525").port == 2525


def test_postgres_urls_use_psycopg(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", "postgres://u@db/tidings")
    assert load_settings().resolved_database_url == "postgresql+psycopg://u@db/tidings"


def test_bad_setting_stops_the_cli_with_one_line(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tidings.cli import app

    monkeypatch.setenv("TIDINGS_BASE_URL", "ftp://nowhere")
    result = CliRunner().invoke(app, ["newsletter", "list"])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "TIDINGS_BASE_URL" in lines[0]
    assert "Traceback" not in result.output
