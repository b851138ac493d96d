"""A database error while a slot is composed leaves the slot alone: the next tick composes it.

A second connection holds a write lock; the scheduler's own engine waits only 300 ms for it
(SQLite busy timeout, PostgreSQL lock_timeout), so its first write fails as "database is
locked" / "lock not available". The blocker lets go as soon as that error is raised, so a
failed-slot record would go through: the slot must still not be recorded as failed.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, create_engine, event, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from tests.builders import articles, newsletter, subscribers
from tidings.compose.failures import failure_of, is_transient
from tidings.config import Settings
from tidings.db.engine import Database, make_engine, make_session_factory
from tidings.db.models import Delivery, Edition, EditionStatus
from tidings.errors import InvalidInput
from tidings.schedule.slots import serve_due_slots

WAIT_MS = 300


def _impatient(url: str) -> Database:
    """The database with a 300 ms wait for locks instead of the usual seconds."""
    if url.startswith("sqlite"):
        engine = make_engine(url)

        @event.listens_for(engine, "connect")
        def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA busy_timeout={WAIT_MS}")

    else:
        engine = make_engine(url, connect_args={"options": f"-c lock_timeout={WAIT_MS}"})
    return Database(engine=engine, sessions=make_session_factory(engine))


@contextmanager
def _locked_until_first_error(db: Database, impatient: Database) -> Iterator[list[str]]:
    """Hold a write lock on the editions until ``impatient`` first fails on it."""
    errors: list[str] = []
    blocker: Connection = db.engine.connect()
    if db.engine.dialect.name == "sqlite":
        blocker.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        blocker.begin()
        blocker.execute(text("LOCK TABLE editions IN SHARE MODE"))

    @event.listens_for(impatient.engine, "handle_error")
    def _let_go(context: Any) -> None:
        errors.append(str(context.original_exception))
        blocker.rollback()

    try:
        yield errors
    finally:
        event.remove(impatient.engine, "handle_error", _let_go)
        blocker.rollback()
        blocker.close()


def test_a_locked_database_leaves_the_slot_to_the_next_tick(
    db: Database, settings: Settings
) -> None:
    newsletter(db, schedule="0 8 * * *", timezone="UTC")
    slot = datetime(2026, 6, 26, 8, 0, tzinfo=UTC)
    articles(db, "daily", 2, slot - timedelta(hours=4), seen=slot - timedelta(hours=4))
    subscribers(db, "daily", 3)
    impatient = _impatient(settings.resolved_database_url)
    try:
        with _locked_until_first_error(db, impatient) as errors:
            assert serve_due_slots(impatient, settings, slot + timedelta(minutes=1)) == []
        assert errors, "the lock was never hit: the test proves nothing"
        with db.session() as session:
            assert session.scalars(select(Edition)).all() == []  # not failed for good
        later = serve_due_slots(impatient, settings, slot + timedelta(minutes=2))
        assert [o.result.created for o in later] == [True]
        assert later[0].result.status != EditionStatus.failed
    finally:
        impatient.dispose()
    with db.session() as session:
        editions = session.scalars(select(Edition)).all()
        assert [e.status for e in editions] != [EditionStatus.failed]
        assert len(editions) == 1
        assert session.query(Delivery).count() == 3


def _error_of(sql: str) -> DBAPIError:
    """The error SQLAlchemy raises for ``sql`` on a real (in-memory) SQLite database."""
    engine = create_engine("sqlite://")
    try:
        with engine.connect() as connection:
            connection.execute(text(sql), {"secret": "a-reader@example.ge"})
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{sql} did not fail")


def test_passing_database_errors_are_transient_and_bad_data_is_not() -> None:
    """A lock or lost connection leaves the slot to the next tick; bad data (malformed JSON,
    a missing table) fails it, with a note that carries no SQL and no parameter."""
    locked = OperationalError("INSERT INTO editions", {}, sqlite3.OperationalError("locked"))
    locked.orig.sqlite_errorname = "SQLITE_BUSY"  # type: ignore[union-attr]
    lost = OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    assert is_transient(locked) and is_transient(lost)
    for sql in ("SELECT json_array_length('not json'), :secret", "SELECT * FROM nowhere, :secret"):
        bad = _error_of(sql)
        assert not is_transient(bad)
        _reason, note = failure_of(bad)
        assert note.startswith("a database error (OperationalError: ")
        assert "SELECT" not in note and "a-reader" not in note
    assert not is_transient(InvalidInput("bad")) and not is_transient(ValueError("bad"))
