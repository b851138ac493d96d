"""Subscriptions counted per newsletter and status: the one query behind the newsletter list
and the dashboard, on SQLite and PostgreSQL."""

from sqlalchemy import select

from tests.builders import newsletter, subscribers
from tidings.audience.service import add_subscriber, unsubscribe
from tidings.catalog.counts import ReaderStatus, subscription_counts
from tidings.catalog.newsletters import list_newsletters
from tidings.db.engine import Database
from tidings.db.models import Subscription, SubscriptionStatus
from tidings.reports.insights import overview


def _audience(db: Database) -> tuple[int, int]:
    daily = newsletter(db, "daily")
    weekly = newsletter(db, "weekly")
    subscribers(db, "daily", 4)  # four active
    add_subscriber(db, "daily", "late@example.ge", None, confirmed=False, source="test")
    add_subscriber(db, "weekly", "reader0@example.ge", None, confirmed=False, source="test")
    add_subscriber(db, "weekly", "other@example.ge", None, confirmed=False, source="test")
    with db.session() as session:
        first = session.scalar(
            select(Subscription.id)
            .where(Subscription.newsletter_id == daily)
            .order_by(Subscription.id)
            .limit(1)
        )
    assert first is not None
    unsubscribe(db, first)
    return daily, weekly


def test_counts_per_newsletter_and_status(db: Database) -> None:
    daily, weekly = _audience(db)
    with db.session() as session:
        counts = subscription_counts(session)
    assert counts == {
        (daily, SubscriptionStatus.active): 3,
        (daily, SubscriptionStatus.pending): 1,
        (daily, SubscriptionStatus.unsubscribed): 1,
        (weekly, SubscriptionStatus.pending): 2,
    }
    assert all(isinstance(status, ReaderStatus) for _, status in counts)


def test_no_subscriptions_no_counts(db: Database) -> None:
    newsletter(db, "daily")
    with db.session() as session:
        assert subscription_counts(session) == {}


def test_the_list_and_the_dashboard_agree(db: Database) -> None:
    _audience(db)
    listed = {n.slug: (n.active_subscribers, n.pending_subscribers) for n in list_newsletters(db)}
    assert listed == {"daily": (3, 1), "weekly": (0, 2)}
    shown = {n.slug: n.counts for n in overview(db)}
    assert shown["daily"] == {"active": 3, "pending": 1, "unsubscribed": 1, "suppressed": 0}
    assert shown["weekly"] == {"active": 0, "pending": 2, "unsubscribed": 0, "suppressed": 0}
