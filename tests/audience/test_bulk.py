"""Bulk actions on an audience filter: unsubscribe, suppress, delete; each counts what it
changed; on SQLite and PostgreSQL."""

from sqlalchemy import select

from tests.audience.people import audience, deliveries, emails
from tidings.audience.bulk import bulk_delete, bulk_suppress, bulk_unsubscribe
from tidings.audience.search import AudienceFilter
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)


def _statuses(db: Database) -> dict[tuple[str, int], SubscriptionStatus]:
    with db.session() as session:
        rows = session.execute(
            select(Subscriber.email, Subscription.newsletter_id, Subscription.status).join(
                Subscription, Subscription.subscriber_id == Subscriber.id
            )
        )
        return {(email, newsletter): status for email, newsletter, status in rows}


def test_unsubscribing_from_the_filters_newsletter_leaves_the_others(db: Database) -> None:
    people = audience(db)
    before = _statuses(db)
    # Ana, Bob and Cara are in daily; Cara has already left, so two change.
    assert bulk_unsubscribe(db, AudienceFilter(people.daily)) == 2
    after = _statuses(db)
    assert {k for k, v in after.items() if v == SubscriptionStatus.unsubscribed} == {
        ("ana@example.ge", people.daily),
        ("bob@example.ge", people.daily),
        ("cara_x@example.ge", people.daily),
    }
    assert after[("ana@example.ge", people.weekly)] == before[("ana@example.ge", people.weekly)]
    assert bulk_unsubscribe(db, AudienceFilter(people.daily)) == 0


def test_unsubscribing_without_a_newsletter_leaves_every_one(db: Database) -> None:
    people = audience(db)
    assert bulk_unsubscribe(db, AudienceFilter(query="ana")) == 2
    assert _statuses(db)[("ana@example.ge", people.weekly)] == SubscriptionStatus.unsubscribed
    assert _statuses(db)[("dato@example.ge", people.weekly)] == SubscriptionStatus.active


def test_suppressing_counts_only_new_entries(db: Database) -> None:
    people = audience(db)
    # Bob is suppressed already (a hard bounce): his entry stays as it was.
    assert bulk_suppress(db, AudienceFilter(people.daily), "cleanup") == 2
    with db.session() as session:
        entries = {
            email: (reason, detail)
            for email, reason, detail in session.execute(
                select(Suppression.email, Suppression.reason, Suppression.detail)
            )
        }
    assert entries == {
        "ana@example.ge": (SuppressionReason.manual, "cleanup"),
        "bob@example.ge": (SuppressionReason.hard_bounce, None),
        "cara_x@example.ge": (SuppressionReason.manual, "cleanup"),
    }
    assert bulk_suppress(db, AudienceFilter(people.daily), "again") == 0


def test_deleting_removes_matches_and_keeps_their_deliveries_anonymous(db: Database) -> None:
    people = audience(db)
    deliveries(db, people.weekly, people.ids["eka@example.ge"], ["Weekly one"])
    assert bulk_delete(db, AudienceFilter(people.weekly, SubscriptionStatus.pending)) == 1
    assert emails(db) == {
        "ana@example.ge",
        "bob@example.ge",
        "cara_x@example.ge",
        "dato@example.ge",
    }
    with db.session() as session:
        assert session.scalars(select(Delivery.subscriber_id)).all() == [None]
    assert bulk_delete(db, AudienceFilter(query="nobody")) == 0
    assert len(emails(db)) == 4
