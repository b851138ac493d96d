"""Consent history is append-only, and a suppressed reader is counted the same everywhere, on
SQLite and PostgreSQL with real rows: the goodbye page's undo and the preference centre's
rejoin keep the original double opt-in record and add dated events with their source; the
dashboard, the newsletter list, the subscriber filter and the export never call a suppressed
address active."""

import csv
from datetime import UTC, datetime
from io import StringIO

from sqlalchemy import select

from tests.builders import newsletter
from tidings.audience.bulk import bulk_suppress, bulk_unsubscribe
from tidings.audience.export import export_subscribers
from tidings.audience.preferences import (
    PreferenceChange,
    save_preferences,
    undo_unsubscribe,
)
from tidings.audience.search import AudienceFilter, search
from tidings.audience.service import add_subscriber, resubscribe, unsubscribe
from tidings.audience.signup import SignupForm, confirm_subscription, record_signup
from tidings.audience.subscribers import SubscriberChange, update_subscriber
from tidings.audience.suppressions import suppress
from tidings.catalog.counts import ReaderStatus
from tidings.catalog.newsletters import list_newsletters
from tidings.db.engine import Database
from tidings.db.models import HistoryKind, Subscription, SubscriptionStatus
from tidings.feedback.history import history_of
from tidings.reports.insights import overview

NOW = datetime(2026, 6, 27, 9, 30, tzinfo=UTC)


def _signed_up_and_confirmed(db: Database) -> tuple[int, int]:
    """Nino signs up on the form and confirms: (subscriber id, subscription id)."""
    form = SignupForm("daily", "nino@example.ge", "Nino", "192.0.2.7", "https://m.example/join")
    due = record_signup(db, form, NOW)
    assert due is not None
    view = confirm_subscription(db, due.subscription_id)
    assert view is not None and view.status == SubscriptionStatus.active
    return view.subscriber_id, due.subscription_id


def _consent(db: Database, subscription_id: int) -> tuple[object, ...]:
    with db.session() as session:
        s = session.get_one(Subscription, subscription_id)
        return (s.consent_at, s.consent_method, s.consent_source, s.consent_ip, s.confirmed_at)


def _events(db: Database, subscriber_id: int) -> list[tuple[HistoryKind, str | None]]:
    """Oldest first: (kind, source)."""
    return [(r.kind, r.source) for r in reversed(history_of(db, subscriber_id))]


def test_undo_and_rejoin_keep_the_original_consent_and_append_events(db: Database) -> None:
    newsletter(db, "daily")
    nino, subscription = _signed_up_and_confirmed(db)
    original = _consent(db, subscription)
    assert original[1] == "signup form" and original[3] == "192.0.2.7" and original[4]

    unsubscribe(db, subscription)  # the one-click link
    assert undo_unsubscribe(db, subscription) is True  # the goodbye page's undo
    assert _consent(db, subscription) == original

    # Leave and rejoin in the preference centre: the consent record still does not move.
    save_preferences(db, subscription, PreferenceChange("Nino", None, frozenset(), []))
    save_preferences(
        db, subscription, PreferenceChange("Nino", None, frozenset({subscription}), [])
    )
    assert _consent(db, subscription) == original

    update_subscriber(db, nino, SubscriberChange(locale="ka-GE"), source="console", by="admin@x")
    assert _events(db, nino) == [
        (HistoryKind.signed_up, "web"),
        (HistoryKind.confirmed, "web"),
        (HistoryKind.unsubscribed, "web"),
        (HistoryKind.resubscribed, "web"),
        (HistoryKind.unsubscribed, "web"),
        (HistoryKind.resubscribed, "web"),
        (HistoryKind.edited, "console"),
    ]
    rows = history_of(db, nino)
    assert rows[0].detail == "changed locale (by admin@x)"
    assert all(r.newsletter_slug == "daily" for r in rows[1:])
    assert [r.created_at for r in rows] == sorted((r.created_at for r in rows), reverse=True)


def test_admin_adds_and_resubscribes_with_their_sources(db: Database) -> None:
    newsletter(db, "daily")
    added = add_subscriber(db, "daily", "dato@example.ge", "Dato", False, source="api")
    again = add_subscriber(db, "daily", "dato@example.ge", None, True, source="cli")
    assert again.note == "confirmed (pending -> active)"
    unsubscribe(db, added.subscription_id, source="console", detail="by admin@x")
    view = resubscribe(db, added.subscription_id, "console", "by admin@x")
    assert view is not None and view.status == SubscriptionStatus.active
    assert _events(db, added.subscriber_id) == [
        (HistoryKind.added, "api"),
        (HistoryKind.confirmed, "cli"),
        (HistoryKind.unsubscribed, "console"),
        (HistoryKind.resubscribed, "console"),
    ]
    with db.session() as session:
        consent = session.scalar(
            select(Subscription.consent_source).where(Subscription.id == added.subscription_id)
        )
    assert consent == "api"  # the first record stays


def _export(db: Database) -> dict[str, str]:
    out = StringIO()
    export_subscribers(db, "daily", out)
    return {row["email"]: row["status"] for row in csv.DictReader(StringIO(out.getvalue()))}


def test_a_suppressed_active_reader_is_not_counted_active_anywhere(db: Database) -> None:
    newsletter(db, "daily")
    for email in ("ana@example.ge", "bob@example.ge", "cara@example.ge"):
        add_subscriber(db, "daily", email, None, True, source="test")
    add_subscriber(db, "daily", "eka@example.ge", None, False, source="test")
    assert suppress(db, "bob@example.ge", "asked by phone", source="console") is True

    (daily,) = overview(db)
    assert daily.counts == {"active": 2, "pending": 1, "unsubscribed": 0, "suppressed": 1}
    (listed,) = list_newsletters(db)
    assert (listed.active_subscribers, listed.pending_subscribers) == (2, 1)
    assert _export(db) == {
        "ana@example.ge": "active",
        "bob@example.ge": "suppressed",
        "cara@example.ge": "active",
        "eka@example.ge": "pending",
    }
    active = search(db, AudienceFilter(status=ReaderStatus.active)).rows
    assert [r.email for r in active] == ["ana@example.ge", "cara@example.ge"]
    shown = search(db, AudienceFilter(status=ReaderStatus.suppressed)).rows
    assert [(r.email, [m.status for m in r.memberships]) for r in shown] == [
        ("bob@example.ge", [ReaderStatus.suppressed])
    ]
    # The suppression is an event of Bob's history, from the console.
    bob = shown[0].id
    assert _events(db, bob)[-1] == (HistoryKind.suppressed, "console")


def test_bulk_actions_write_one_event_per_reader(db: Database) -> None:
    daily = newsletter(db, "daily")
    people = [
        add_subscriber(db, "daily", f"r{i}@example.ge", None, True, source="test").subscriber_id
        for i in range(3)
    ]
    suppress(db, "r0@example.ge", "earlier")
    assert bulk_unsubscribe(db, AudienceFilter(daily), detail="by admin@x") == 3
    assert bulk_suppress(db, AudienceFilter(daily), "cleanup") == 2
    for person in people:
        kinds = [(r.kind, r.source) for r in history_of(db, person)]
        assert kinds.count((HistoryKind.unsubscribed, "console")) == 1
        assert kinds.count((HistoryKind.suppressed, "console")) == 1  # r0's was the first
    last = history_of(db, people[1])[0]
    assert (last.kind, last.detail) == (HistoryKind.suppressed, "manual: cleanup")
