"""Shared fixtures: real SQLite and PostgreSQL databases, settings, and the CLI runner.

Storage tests take the ``db`` fixture, which runs them once on SQLite and once on PostgreSQL.
PostgreSQL is the local server (TIDINGS_TEST_POSTGRES_URL, default 127.0.0.1:5432 with trust
auth); the suite creates its own database and drops it at the end. Without a server the
PostgreSQL half is skipped, except with CI=true, where it fails.
"""

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tidings.cli import app
from tidings.config import Settings, load_settings
from tidings.db.engine import Database, open_database
from tidings.db.migrate import upgrade
from tidings.db.models import Base

ADMIN_URL = os.environ.get(
    "TIDINGS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def _postgres_reachable() -> str | None:
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    problem = _postgres_reachable()
    if problem is not None:
        message = f"PostgreSQL at {ADMIN_URL} is unreachable ({problem})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message + "; skipping the PostgreSQL half")
    name = f"tidings_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_postgres(postgres_url: str) -> str:
    database = open_database(postgres_url)
    upgrade(database.engine)
    database.dispose()
    return postgres_url


def _empty_tables(database: Database) -> None:
    names = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL: a new SQLite file, or the session's PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tidings.db'}"
        database = open_database(url)
        upgrade(database.engine)
        database.dispose()
        yield url
        return
    url = request.getfixturevalue("migrated_postgres")
    yield url
    database = open_database(url)
    _empty_tables(database)
    database.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for a test: its own data dir and database, via the environment."""
    for name in list(os.environ):
        if name.startswith("TIDINGS_") and name != "TIDINGS_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("TIDINGS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_SECRET_KEY", TEST_SECRET)
    # The tests' "real" SMTP servers run on loopback with an http://127.0.0.1 base URL;
    # tests/mail/test_safe_links.py turns this off to see the refusal.
    monkeypatch.setenv("TIDINGS_ALLOW_INSECURE_LINKS", "true")
    monkeypatch.setenv("COLUMNS", "200")  # rich tables unwrapped, so output can be matched
    return load_settings()


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    """The test's database (SQLite, then PostgreSQL)."""
    database = open_database(settings.resolved_database_url)
    yield database
    database.dispose()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cli:
    """Runs ``tidings`` commands in-process with the test's environment."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> CliResult:
        result = self.runner.invoke(app, list(args), input=input, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli(settings: Settings) -> Cli:
    return Cli()


@pytest.fixture
def db_name(database_url: str) -> str:
    """Which database this run of a test uses, for names of artifacts."""
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"
