"""Engines and session factories for SQLite (embedded default) and PostgreSQL."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (web pages) run while a writer (worker, import) works; foreign keys are
    # off by default in SQLite; the busy timeout makes a second writer wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite, create the file's folder and set the pragmas."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


SessionFactory = sessionmaker[Session]


def make_session_factory(engine: Engine) -> SessionFactory:
    """Sessions whose objects stay readable after commit (services return them to front doors)."""
    return sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class Database:
    """The engine and its session factory: what services are handed to do their work."""

    engine: Engine
    sessions: SessionFactory

    def session(self) -> Session:
        """A new session; use it as a context manager and commit explicitly."""
        return self.sessions()

    def dispose(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()


def open_database(url: str) -> Database:
    """An engine and session factory for ``url``."""
    engine = make_engine(url)
    return Database(engine=engine, sessions=make_session_factory(engine))
