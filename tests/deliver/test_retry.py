"""Short transactions are tried again on real contention (a write lock held by another
connection), and only on contention."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from tests.builders import newsletter
from tidings.config import Settings
from tidings.db.engine import Database, make_engine, make_session_factory
from tidings.db.models import Newsletter
from tidings.deliver import retry
from tidings.deliver.retry import retry_transient

WAIT_MS = 100


@pytest.fixture
def impatient(db: Database, settings: Settings) -> Iterator[Database]:
    """The test's database, waiting only 100 ms for a lock instead of the usual seconds."""
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        engine = make_engine(url)

        @event.listens_for(engine, "connect")
        def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA busy_timeout={WAIT_MS}")

    else:
        engine = make_engine(url, connect_args={"options": f"-c lock_timeout={WAIT_MS}"})
    yield Database(engine=engine, sessions=make_session_factory(engine))
    engine.dispose()


@contextmanager
def _write_locked(db: Database) -> Iterator[Connection]:
    """Another connection holding a write lock on the newsletters until it is let go."""
    blocker = db.engine.connect()
    if db.engine.dialect.name == "sqlite":
        blocker.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        blocker.begin()
        blocker.execute(text("LOCK TABLE newsletters IN SHARE MODE"))
    try:
        yield blocker
    finally:
        blocker.rollback()
        blocker.close()


def _rename(db: Database, attempts: list[int]) -> str:
    attempts.append(1)
    with db.session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        newsletter.name = f"Renamed after {len(attempts)}"
        session.commit()
        return newsletter.name


def test_contention_is_tried_again_until_the_lock_is_let_go(
    db: Database, impatient: Database, caplog: pytest.LogCaptureFixture
) -> None:
    newsletter(db)
    attempts: list[int] = []
    with _write_locked(db) as blocker:

        @event.listens_for(impatient.engine, "handle_error")
        def _let_go_after_two(context: Any) -> None:
            if len(attempts) == 2:
                blocker.rollback()

        with caplog.at_level(logging.WARNING, logger=retry.__name__):
            assert retry_transient(_rename, impatient, attempts) == "Renamed after 3"
    assert len(attempts) == 3
    assert len([r for r in caplog.records if "database busy" in r.getMessage()]) == 2


def test_contention_that_outlasts_the_retries_is_raised(db: Database, impatient: Database) -> None:
    newsletter(db)
    attempts: list[int] = []
    with _write_locked(db), pytest.raises(OperationalError):
        retry_transient(_rename, impatient, attempts)
    assert len(attempts) == retry.RETRIES


def test_any_other_error_is_raised_at_once(db: Database) -> None:
    attempts: list[int] = []

    def broken() -> int:
        attempts.append(1)
        with db.session() as session:
            return int(session.scalar(select(func.count()).select_from(text("no_such_table"))))

    with pytest.raises((OperationalError, ProgrammingError)):
        retry_transient(broken)
    assert attempts == [1]
