"""Query helpers about membership, shared by the audience services (they never commit)."""

from datetime import datetime

from sqlalchemy import ColumnElement, literal, select
from sqlalchemy.orm import Session

from tidings.db import clauses
from tidings.db.dialect import row_count


def is_suppressed(session: Session, email: str) -> bool:
    """Whether ``email`` is on the suppression list."""
    return bool(session.scalar(select(clauses.is_suppressed(literal(email)))))


def leave(session: Session, now: datetime, *which: ColumnElement[bool]) -> int:
    """Unsubscribe the subscriptions matching ``which`` (those still subscribed); how many.

    The link, the preference centre and bulk actions all leave through :func:`clauses.leave`.
    """
    return row_count(session.execute(clauses.leave(now, *which)))
