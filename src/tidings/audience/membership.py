"""Query helpers about membership, shared by the audience services (they never commit)."""

from datetime import datetime

from sqlalchemy import ColumnElement, literal, select, update
from sqlalchemy.orm import Session

from tidings.db import clauses
from tidings.db.dialect import row_count
from tidings.db.models import Subscription, SubscriptionStatus


def is_suppressed(session: Session, email: str) -> bool:
    """Whether ``email`` is on the suppression list."""
    return bool(session.scalar(select(clauses.is_suppressed(literal(email)))))


def leave(session: Session, now: datetime, *which: ColumnElement[bool]) -> int:
    """Unsubscribe the subscriptions matching ``which`` (those still subscribed); how many.

    The one statement behind every way out: the link, the preference centre, bulk actions.
    """
    result = session.execute(
        update(Subscription)
        .where(*which, Subscription.status != SubscriptionStatus.unsubscribed)
        .values(status=SubscriptionStatus.unsubscribed, unsubscribed_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return row_count(result)
