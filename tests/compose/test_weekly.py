"""Weekly digests: readers who chose weekly get one edition of the week's stories on the
weekly schedule, and no daily ones; daily readers are not sent the weekly digest."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.builders import articles, newsletter, subscribers
from tidings.audience.preferences import PreferenceChange, save_preferences
from tidings.compose.service import compose_scheduled
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Cadence, Delivery, Edition, Newsletter, Subscriber, Subscription
from tidings.errors import InvalidInput
from tidings.schedule.slots import serve_due_slots

SATURDAY = datetime(2026, 6, 27, 5, 0, tzinfo=UTC)  # 09:00 in Tbilisi


def _recipients(db: Database, edition_id: int) -> set[str]:
    with db.session() as session:
        return set(
            session.scalars(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.edition_id == edition_id)
            )
        )


def _weekly_newsletter(db: Database, weekly: str | None = "0 9 * * 6") -> int:
    newsletter_id = newsletter(db)
    with db.session() as session:
        session.get_one(Newsletter, newsletter_id).weekly_schedule_cron = weekly
        session.commit()
    subscribers(db, "daily", 3)
    with db.session() as session:
        subscription_id = session.scalars(
            select(Subscription.id)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscriber.email == "reader2@example.ge")
        ).one()
    if weekly:
        change = PreferenceChange(None, None, frozenset({subscription_id}), [], Cadence.weekly)
        assert save_preferences(db, subscription_id, change)
    else:
        with db.session() as session:
            session.get_one(Subscription, subscription_id).cadence = Cadence.weekly
            session.commit()
    return newsletter_id


def test_weekly_readers_get_the_weeks_stories_once_a_week(db: Database, settings: Settings) -> None:
    newsletter_id = _weekly_newsletter(db)
    week = articles(
        db,
        "daily",
        6,
        SATURDAY - timedelta(days=6),
        step=timedelta(days=1),
        seen=SATURDAY - timedelta(days=6),
    )
    old = articles(db, "daily", 1, SATURDAY - timedelta(days=9), seen=SATURDAY - timedelta(days=9))
    friday = compose_scheduled(db, settings, newsletter_id, SATURDAY - timedelta(days=1))
    assert _recipients(db, friday.edition_id) == {"reader0@example.ge", "reader1@example.ge"}
    weekly = compose_scheduled(db, settings, newsletter_id, SATURDAY, Cadence.weekly)
    assert weekly.created and weekly.articles == 6  # the daily edition took some; not these
    assert _recipients(db, weekly.edition_id) == {"reader2@example.ge"}
    with db.session() as session:
        edition = session.get_one(Edition, weekly.edition_id)
        assert edition.cadence == Cadence.weekly
        assert edition.subject is not None and ", the week:" in edition.subject
        assert (
            edition.text_body is not None and "The week to Saturday, June 27" in edition.text_body
        )
    # A daily slot at the same moment is its own edition.
    daily = compose_scheduled(db, settings, newsletter_id, SATURDAY)
    assert daily.edition_id != weekly.edition_id
    again = compose_scheduled(db, settings, newsletter_id, SATURDAY, Cadence.weekly)
    assert (again.created, again.edition_id) == (False, weekly.edition_id)
    assert set(week) and old


def test_scheduler_serves_both_cadences(db: Database, settings: Settings) -> None:
    _weekly_newsletter(db)
    articles(db, "daily", 2, SATURDAY - timedelta(hours=3), seen=SATURDAY - timedelta(hours=3))
    outcomes = serve_due_slots(db, settings, SATURDAY + timedelta(minutes=5))
    served = {(o.cadence, o.slot) for o in outcomes}
    assert (Cadence.weekly, SATURDAY) in served
    assert (Cadence.daily, SATURDAY - timedelta(hours=1)) in served  # 08:00 Tbilisi


def test_without_a_weekly_digest_everyone_gets_the_daily(db: Database, settings: Settings) -> None:
    newsletter_id = _weekly_newsletter(db, weekly=None)
    articles(db, "daily", 2, SATURDAY - timedelta(hours=3), seen=SATURDAY - timedelta(hours=3))
    result = compose_scheduled(db, settings, newsletter_id, SATURDAY)
    assert len(_recipients(db, result.edition_id)) == 3
    with db.session() as session:
        subscription_id = session.scalars(select(Subscription.id)).first()
    assert subscription_id is not None
    with pytest.raises(InvalidInput):
        save_preferences(
            db, subscription_id, PreferenceChange(None, None, frozenset(), [], Cadence.weekly)
        )
