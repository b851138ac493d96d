"""The welcome's claim on both databases: once per activation, whoever races; never for a
pending, unsubscribed or suppressed reader, nor when the newsletter has it off; a failed send
gives back only its own claim; the latest public edition is the one linked."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.builders import newsletter, subscribers
from tidings.audience.service import add_subscriber
from tidings.audience.signup import confirm_subscription
from tidings.audience.welcome import (
    REWELCOME_AFTER,
    claim_welcome,
    release_welcome,
    render_welcome,
    take_welcome,
)
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Edition,
    EditionKind,
    EditionStatus,
    Newsletter,
    Subscription,
    Suppression,
    SuppressionReason,
)
from tidings.db.types import utcnow


def _only_subscription(db: Database) -> int:
    with db.session() as session:
        return session.scalars(select(Subscription.id)).one()


def _claims(db: Database, subscription_id: int) -> bool:
    with db.session() as session:
        claimed = claim_welcome(session, subscription_id, utcnow())
        session.commit()
        return claimed


def test_one_claim_per_activation_however_many_try(db: Database, settings: Settings) -> None:
    newsletter(db)
    subscribers(db, "daily", 1)
    subscription_id = _only_subscription(db)
    start = threading.Barrier(6)
    results: list[bool] = []

    def claim() -> None:
        start.wait()
        try:
            results.append(_claims(db, subscription_id))
        except Exception:  # SQLite's busy writer: that try did not claim either
            results.append(False)

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False] * 5 + [True]
    assert take_welcome(db, settings, subscription_id) is None  # later: none either


def test_no_claim_for_pending_suppressed_or_switched_off(db: Database, settings: Settings) -> None:
    newsletter(db)
    add_subscriber(db, "daily", "pending@example.ge", None, confirmed=False, source="test")
    pending = _only_subscription(db)
    assert not _claims(db, pending)
    confirm_subscription(db, pending, source="api")  # an admin's activation: no welcome sent
    with db.session() as session:
        session.add(Suppression(email="pending@example.ge", reason=SuppressionReason.manual))
        session.commit()
    assert not _claims(db, pending)
    with db.session() as session:
        session.execute(update(Suppression).values(email="someone-else@example.ge"))
        session.execute(update(Newsletter).values(welcome_enabled=False))
        session.commit()
    assert not _claims(db, pending)
    with db.session() as session:
        session.execute(update(Newsletter).values(welcome_enabled=True))
        session.commit()
    assert _claims(db, pending)


def test_a_failed_send_gives_back_its_own_claim_only(db: Database, settings: Settings) -> None:
    newsletter(db)
    subscribers(db, "daily", 1)
    subscription_id = _only_subscription(db)
    due = take_welcome(db, settings, subscription_id)
    assert due is not None and due.previous_sent_at is None
    release_welcome(db, due)
    again = take_welcome(db, settings, subscription_id)  # free again: claimed anew
    assert again is not None
    release_welcome(db, due)  # the first, stale claim: changes nothing now
    with db.session() as session:
        sent = session.scalar(select(Subscription.welcome_sent_at))
    assert sent is not None and abs(sent - again.claimed_at) < timedelta(seconds=1)


def test_welcomed_again_only_after_the_interval(db: Database, settings: Settings) -> None:
    newsletter(db)
    subscribers(db, "daily", 1)
    subscription_id = _only_subscription(db)
    assert _claims(db, subscription_id)
    with db.session() as session:
        session.execute(
            update(Subscription).values(
                welcome_sent_at=utcnow() - REWELCOME_AFTER + timedelta(hours=1)
            )
        )
        session.commit()
    assert not _claims(db, subscription_id)
    with db.session() as session:
        session.execute(
            update(Subscription).values(
                welcome_sent_at=utcnow() - REWELCOME_AFTER - timedelta(hours=1)
            )
        )
        session.commit()
    assert _claims(db, subscription_id)


def test_the_latest_public_edition_is_linked(db: Database, settings: Settings) -> None:
    daily = newsletter(db)
    subscribers(db, "daily", 1)
    subscription_id = _only_subscription(db)
    with db.session() as session:
        for subject, status in (
            ("Sent on Friday", EditionStatus.sent),
            ("Going out now", EditionStatus.sending),
            ("Not yet sent", EditionStatus.draft),
        ):
            session.add(
                Edition(
                    newsletter_id=daily, kind=EditionKind.scheduled, status=status, subject=subject
                )
            )
        session.commit()
        sending = session.scalar(select(Edition.id).where(Edition.subject == "Going out now"))
    due = take_welcome(db, settings, subscription_id)
    assert due is not None and due.latest is not None
    assert due.latest.subject == "Going out now"
    assert due.latest.url == f"{settings.base_url}/archive/daily/{sending}"
    raw = render_welcome(db, settings, subscription_id)
    assert f"/archive/daily/{sending}".encode() in raw
    with pytest.raises(LookupError):
        render_welcome(db, settings, subscription_id + 1000)
