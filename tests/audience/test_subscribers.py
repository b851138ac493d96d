"""One subscriber: their record (subscriptions, consent, suppression, newest deliveries),
changing their fields, erasing them; on SQLite and PostgreSQL."""

import pytest
from sqlalchemy import func, select

from tests.audience.people import audience, deliveries
from tidings.audience.subscribers import (
    SubscriberChange,
    erase,
    subscriber_record,
    update_subscriber,
)
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Subscription, SubscriptionStatus
from tidings.errors import InvalidInput
from tidings.mail.addresses import AttributeLimits


def test_the_record_holds_subscriptions_by_newsletter_name_and_newest_deliveries(
    db: Database,
) -> None:
    people = audience(db)
    ana = people.ids["ana@example.ge"]
    deliveries(db, people.daily, ana, ["First", "Second", "Third"])
    record = subscriber_record(db, ana, history=2)
    assert record is not None
    assert (record.email, record.name, record.suppression) == (
        "ana@example.ge",
        "Ana Beridze",
        None,
    )
    assert [(s.newsletter, s.status) for s in record.subscriptions] == [
        ("Alpha Weekly", SubscriptionStatus.active),
        ("Zeta Daily", SubscriptionStatus.active),
    ]
    daily = record.subscriptions[1]
    assert (daily.consent_method, daily.consent_source, daily.cadence) == (
        "admin",
        "test",
        "daily",
    )
    assert daily.consent_at is not None and daily.confirmed_at is not None
    assert [(d.subject, d.state, d.attempts) for d in record.deliveries] == [
        ("Third", DeliveryState.sent, 1),
        ("Second", DeliveryState.sent, 1),
    ]


def test_the_record_names_a_suppression_and_an_unknown_id_has_none(db: Database) -> None:
    people = audience(db)
    bob = subscriber_record(db, people.ids["bob@example.ge"])
    assert bob is not None and bob.suppression == "hard_bounce"
    assert [s.status for s in bob.subscriptions] == [SubscriptionStatus.pending]
    cara = subscriber_record(db, people.ids["cara_x@example.ge"])
    assert cara is not None and cara.subscriptions[0].unsubscribed_at is not None
    assert subscriber_record(db, 10_000) is None


def test_changes_apply_field_by_field_and_attributes_merge_key_by_key(db: Database) -> None:
    people = audience(db)
    dato = people.ids["dato@example.ge"]
    assert update_subscriber(db, dato, SubscriberChange(attributes={"city": "Gori", "plan": "x"}))
    assert update_subscriber(
        db,
        dato,
        SubscriberChange(
            name=" Dato\r\nKapanadze ",
            locale="ka-GE",
            timezone="Asia/Tbilisi",
            attributes={"plan": "", "team": "news"},
        ),
    )
    record = subscriber_record(db, dato)
    assert record is not None
    assert (record.name, record.locale, record.timezone) == (
        "Dato Kapanadze",
        "ka-GE",
        "Asia/Tbilisi",
    )
    assert record.attributes == {"city": "Gori", "team": "news"}  # "" removed "plan"
    assert update_subscriber(db, dato, SubscriberChange())  # nothing to change: all kept
    again = subscriber_record(db, dato)
    assert again is not None and (again.name, again.attributes) == (record.name, record.attributes)


def test_bad_values_are_refused_and_nothing_changes(db: Database) -> None:
    people = audience(db)
    dato = people.ids["dato@example.ge"]
    with pytest.raises(InvalidInput):
        update_subscriber(db, dato, SubscriberChange(name="New", timezone="Mars/Olympus"))
    with pytest.raises(InvalidInput):
        update_subscriber(db, dato, SubscriberChange(locale="not a locale!"))
    with pytest.raises(InvalidInput):
        update_subscriber(
            db,
            dato,
            SubscriberChange(attributes={"a": "1", "b": "2", "c": "3"}),
            AttributeLimits(count=2, size=1000),
        )
    with pytest.raises(InvalidInput):
        update_subscriber(db, dato, SubscriberChange(attributes={"a": "nul\x00"}))
    record = subscriber_record(db, dato)
    assert record is not None and (record.name, record.timezone, record.attributes) == (
        "Dato",
        None,
        {},
    )
    assert update_subscriber(db, 10_000, SubscriberChange(name="x")) is False


def test_erasure_removes_the_person_and_keeps_anonymous_deliveries(db: Database) -> None:
    people = audience(db)
    ana = people.ids["ana@example.ge"]
    deliveries(db, people.daily, ana, ["One", "Two"])
    assert erase(db, ana) is True
    assert subscriber_record(db, ana) is None
    with db.session() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(Subscription)
                .where(Subscription.subscriber_id == ana)
            )
            == 0
        )
        kept = session.execute(select(Delivery.subscriber_id, Delivery.state)).all()
    assert kept == [(None, DeliveryState.sent), (None, DeliveryState.sent)]
    assert erase(db, ana) is False
