"""A database error while a slot is composed leaves the slot alone: the next tick composes it.

A second connection holds a write lock; the scheduler's own engine waits only 300 ms for it
(SQLite busy timeout, PostgreSQL lock_timeout), so its first write fails as "database is
locked" / "lock not available". The blocker lets go as soon as that error is raised, so a
failed-slot record would go through: the slot must still not be recorded as failed.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, event, select, text
from sqlalchemy.exc import OperationalError

from tests.builders import articles, newsletter, subscribers
from tidings.compose.service import failure_of, is_transient
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


def test_database_errors_are_transient_and_composing_errors_are_not() -> None:
    locked = OperationalError(
        "INSERT INTO editions (subject) VALUES (?)", {"subject": "secret"}, Exception("locked")
    )
    assert is_transient(locked)
    assert not is_transient(InvalidInput("bad"))
    assert not is_transient(ValueError("bad"))
    _, note = failure_of(locked)
    assert "INSERT" not in note and "secret" not in note
