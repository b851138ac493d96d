"""Helpers the sending limits' tests share: one reservation in its own transaction, a
limit's row as stored, and the statements that touch the limits' tables."""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from tidings.db.engine import Database
from tidings.db.models import SendLimit
from tidings.deliver import limits
from tidings.deliver.limitkeys import Key
from tidings.deliver.limits import NotBefore, Reserved


def reserve(
    db: Database, key: Key, count: int = 1, now: float | None = None, ahead: float = 1.0
) -> Reserved | NotBefore | None:
    """Reserve ``count`` sends on ``key``'s clock and commit (``now`` None: the database's
    time)."""
    with db.session() as session:
        got = limits.reserve(session, key, count, ahead, now)
        session.commit()
        return got


def limit_row(db: Database, key: Key) -> SendLimit | None:
    """``key``'s row of ``send_limits``, if any."""
    with db.session() as session:
        return session.get(SendLimit, (key.scope.value, key.name))


@contextmanager
def limit_statements(db: Database) -> Iterator[list[str]]:
    """The statements that touch ``send_limits`` or ``send_limit_slots`` while inside (any
    connection of ``db``'s engine), in the list yielded."""
    seen: list[str] = []

    def note(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "send_limit" in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
