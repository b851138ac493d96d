"""The preference centre's services, and that fan-out honours the choices."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.builders import articles, newsletter, subscribers
from tidings.audience.preferences import (
    PreferenceChange,
    preferences_of,
    save_preferences,
    undo_unsubscribe,
    unsubscribe_everything,
)
from tidings.audience.service import unsubscribe
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Article, Delivery, Subscriber, Subscription, SubscriptionStatus
from tidings.errors import InvalidInput


def _subscriptions(db: Database, email: str) -> dict[int, Subscription]:
    with db.session() as session:
        rows = session.scalars(
            select(Subscription)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscriber.email == email)
        )
        return {s.newsletter_id: s for s in rows}


def _two_newsletters(db: Database) -> tuple[int, int]:
    daily = newsletter(db, "daily")
    culture = newsletter(db, "culture")
    subscribers(db, "daily", 1)
    subscribers(db, "culture", 1)
    return daily, culture


def test_save_changes_name_timezone_sections_and_newsletters(db: Database) -> None:
    daily, culture = _two_newsletters(db)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=2))
    mine = _subscriptions(db, "reader0@example.ge")
    prefs = preferences_of(db, mine[daily].id)
    assert prefs is not None and prefs.sections_offered == ["Politics"]
    assert {n.slug for n in prefs.newsletters} == {"daily", "culture"}
    change = PreferenceChange(
        "Nino\r\nBeridze", "Asia/Tbilisi", frozenset({mine[daily].id}), ["Politics"]
    )
    assert save_preferences(db, mine[daily].id, change)
    after = _subscriptions(db, "reader0@example.ge")
    assert after[daily].status == SubscriptionStatus.active
    assert after[daily].sections == ["Politics"]
    assert after[culture].status == SubscriptionStatus.unsubscribed
    saved = preferences_of(db, mine[daily].id)
    assert saved is not None and saved.name == "Nino Beridze" and saved.timezone == "Asia/Tbilisi"
    # Ticking it again rejoins (the signed link proves the address).
    keep_both = frozenset({mine[daily].id, mine[culture].id})
    save_preferences(db, mine[daily].id, PreferenceChange(None, None, keep_both, []))
    assert _subscriptions(db, "reader0@example.ge")[culture].status == SubscriptionStatus.active


@pytest.mark.parametrize(
    "change",
    [
        PreferenceChange(None, "Mars/Olympus", frozenset(), []),
        PreferenceChange(None, None, frozenset(), ["Astrology"]),
    ],
)
def test_bad_values_change_nothing(db: Database, change: PreferenceChange) -> None:
    daily, _ = _two_newsletters(db)
    mine = _subscriptions(db, "reader0@example.ge")
    with pytest.raises(InvalidInput):
        save_preferences(db, mine[daily].id, change)
    assert all(
        s.status == SubscriptionStatus.active
        for s in _subscriptions(db, "reader0@example.ge").values()
    )


def test_leave_everything_and_undo_one(db: Database) -> None:
    daily, culture = _two_newsletters(db)
    mine = _subscriptions(db, "reader0@example.ge")
    assert unsubscribe_everything(db, mine[daily].id)
    assert {s.status for s in _subscriptions(db, "reader0@example.ge").values()} == {
        SubscriptionStatus.unsubscribed
    }
    assert undo_unsubscribe(db, mine[culture].id)
    after = _subscriptions(db, "reader0@example.ge")
    assert after[culture].status == SubscriptionStatus.active
    assert after[daily].status == SubscriptionStatus.unsubscribed
    assert not undo_unsubscribe(db, mine[culture].id)  # nothing to undo now


def test_undo_is_refused_a_day_later(db: Database) -> None:
    daily, _ = _two_newsletters(db)
    subscription_id = _subscriptions(db, "reader0@example.ge")[daily].id
    unsubscribe(db, subscription_id)
    with db.session() as session:
        stored = session.get_one(Subscription, subscription_id)
        stored.unsubscribed_at = datetime.now(UTC) - timedelta(hours=25)
        session.commit()
    assert not undo_unsubscribe(db, subscription_id)


def test_fan_out_skips_editions_without_a_chosen_section(db: Database, settings: Settings) -> None:
    daily = newsletter(db, "daily")
    ids = articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=2))
    with db.session() as session:
        session.get_one(Article, ids[1]).section = "Culture"
        session.commit()
    subscribers(db, "daily", 3)
    chosen = {"reader0@example.ge": ["Culture"], "reader1@example.ge": ["Sport", "Politics"]}
    for email, sections in chosen.items():
        subscription = _subscriptions(db, email)[daily]
        with db.session() as session:
            session.get_one(Subscription, subscription.id).sections = sections
            session.commit()
    politics_only = send_one_off(db, settings, "daily", OneOff(article_ids=[ids[0]]))
    both = send_one_off(db, settings, "daily", OneOff(article_ids=ids))

    def recipients(edition_id: int) -> set[str]:
        with db.session() as session:
            return set(
                session.scalars(
                    select(Subscriber.email)
                    .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                    .where(Delivery.edition_id == edition_id)
                )
            )

    assert recipients(politics_only.edition_id) == {"reader1@example.ge", "reader2@example.ge"}
    assert recipients(both.edition_id) == {
        "reader0@example.ge",
        "reader1@example.ge",
        "reader2@example.ge",
    }
