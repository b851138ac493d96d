from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryState,
    Edition,
    EditionKind,
    EditionStatus,
    Newsletter,
    Subscriber,
)


def _newsletter(db: Database) -> int:
    with db.session() as session:
        newsletter = Newsletter(
            slug="daily",
            name="Daily",
            from_name="D",
            from_address="d@example.org",
            schedule_cron="0 7 * * *",
            timezone="UTC",
        )
        session.add(newsletter)
        session.commit()
        return newsletter.id


def test_one_edition_per_newsletter_and_slot(db: Database) -> None:
    newsletter_id = _newsletter(db)
    slot = datetime(2026, 6, 26, 4, 0, tzinfo=UTC)
    with db.session() as session:
        session.add(
            Edition(
                newsletter_id=newsletter_id,
                kind=EditionKind.scheduled,
                slot=slot,
                status=EditionStatus.draft,
            )
        )
        session.commit()
    with db.session() as session:
        session.add(
            Edition(
                newsletter_id=newsletter_id,
                kind=EditionKind.scheduled,
                slot=slot,
                status=EditionStatus.draft,
            )
        )
        with pytest.raises(IntegrityError):
            session.commit()
    with db.session() as session:  # one-off editions have no slot and may repeat
        for _ in range(2):
            session.add(
                Edition(
                    newsletter_id=newsletter_id, kind=EditionKind.oneoff, status=EditionStatus.draft
                )
            )
        session.commit()


def test_one_delivery_per_edition_and_subscriber(db: Database) -> None:
    newsletter_id = _newsletter(db)
    with db.session() as session:
        edition = Edition(
            newsletter_id=newsletter_id, kind=EditionKind.oneoff, status=EditionStatus.sending
        )
        subscriber = Subscriber(email="a@example.org", attributes={})
        session.add_all([edition, subscriber])
        session.flush()
        session.add(
            Delivery(
                edition_id=edition.id,
                subscriber_id=subscriber.id,
                state=DeliveryState.queued,
                message_id="<1@x>",
            )
        )
        session.commit()
        session.add(
            Delivery(
                edition_id=edition.id,
                subscriber_id=subscriber.id,
                state=DeliveryState.queued,
                message_id="<2@x>",
            )
        )
        with pytest.raises(IntegrityError):
            session.commit()


def test_timestamps_come_back_in_utc(db: Database) -> None:
    newsletter_id = _newsletter(db)
    tbilisi = timezone(timedelta(hours=4))
    slot = datetime(2026, 6, 26, 8, 0, tzinfo=tbilisi)
    with db.session() as session:
        session.add(
            Edition(
                newsletter_id=newsletter_id,
                kind=EditionKind.scheduled,
                slot=slot,
                status=EditionStatus.draft,
            )
        )
        session.commit()
    with db.session() as session:
        stored = session.scalar(select(Edition.slot))
    assert stored == slot
    assert stored is not None and stored.utcoffset() == timedelta(0)
    assert stored.hour == 4


def test_naive_datetimes_are_refused(db: Database) -> None:
    newsletter_id = _newsletter(db)
    with db.session() as session:
        session.add(
            Edition(
                newsletter_id=newsletter_id,
                kind=EditionKind.scheduled,
                slot=datetime(2026, 6, 26, 8, 0),
                status=EditionStatus.draft,
            )
        )
        with pytest.raises(Exception, match="naive datetime"):
            session.commit()
