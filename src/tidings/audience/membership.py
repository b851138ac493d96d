"""Query helpers about membership, shared by the audience services (they never commit)."""

from datetime import datetime

from sqlalchemy import ColumnElement, literal, select
from sqlalchemy.orm import Session

from tidings.db import clauses
from tidings.db.dialect import row_count
from tidings.db.models import HistoryKind, Subscription, SubscriptionStatus
from tidings.feedback.history import record_each


def is_suppressed(session: Session, email: str) -> bool:
    """Whether ``email`` is on the suppression list (the rule is :func:`clauses.is_suppressed`;
    this only asks it about one address)."""
    return bool(session.scalar(select(clauses.is_suppressed(literal(email)))))


def leave(
    session: Session,
    now: datetime,
    *which: ColumnElement[bool],
    source: str = "web",
    detail: str | None = None,
) -> int:
    """Unsubscribe the subscriptions matching ``which`` (those still subscribed); how many.

    Each one left gets an ``unsubscribed`` event in its subscriber's history, from
    ``source``, written in one INSERT ... SELECT before the change. The link, the preference
    centre, the console and bulk actions all leave through :func:`clauses.leave`.
    """
    still = select(Subscription.subscriber_id, Subscription.newsletter_id).where(
        *which, Subscription.status != SubscriptionStatus.unsubscribed
    )
    record_each(session, still, HistoryKind.unsubscribed, detail, now, source)
    return row_count(session.execute(clauses.leave(now, *which)))
