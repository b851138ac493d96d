"""inbound/service: provider events (already verified) applied once, and the retention
clean-up, on SQLite and PostgreSQL."""

import threading
from datetime import timedelta

from sqlalchemy import func, select

from tests.inbound.people import readers, statuses, suppressed
from tests.inbound.samples import sample
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryFeedback,
    HistoryKind,
    InboundMeaning,
    InboundMessage,
    SubscriberEvent,
    SubscriptionStatus,
)
from tidings.db.types import utcnow
from tidings.inbound.events import Handled, ProviderEvent
from tidings.inbound.service import handle_event, handle_message, purge_old
from tidings.mail.status import BounceKind

ACTIVE = SubscriptionStatus.active
GONE = SubscriptionStatus.unsubscribed


def _event(event_id: str, kind: str, email: str, **fields: object) -> ProviderEvent:
    values: dict[str, object] = {
        "provider": "mailgun",
        "event_id": event_id,
        "kind": kind,
        "email": email,
        "message_id": None,
        "bounce_kind": None,
        "status": None,
        "diagnostic": None,
        "raw": b'{"event": "' + kind.encode() + b'"}',
    }
    values.update(fields)
    return ProviderEvent(**values)  # type: ignore[arg-type]


def _count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(InboundMessage)) or 0)


def test_a_bounce_event_once(db: Database, settings: Settings) -> None:
    nino, giorgi, *_ = readers(db, settings)
    event = _event(
        "ev-1",
        "bounce",
        nino.email.upper(),
        message_id=nino.message_id,
        bounce_kind=BounceKind.hard,
        status="5.1.1",
        diagnostic="550 5.1.1 no such user",
    )
    first = handle_event(db, settings, event)
    assert (first.meaning, first.new) == (InboundMeaning.hard_bounce, True)
    assert suppressed(db) == {nino.email: "hard_bounce"}
    with db.session() as session:
        assert session.get_one(Delivery, nino.delivery_id).feedback == DeliveryFeedback.bounced
        row = session.scalars(select(InboundMessage)).one()
    assert (row.channel, row.provider, row.event_id, row.delivery_id) == (
        "webhook",
        "mailgun",
        "ev-1",
        nino.delivery_id,
    )
    assert row.status == "5.1.1" and row.recipient_domain == "example.ge"
    replay = handle_event(db, settings, event)
    assert replay == Handled(None, InboundMeaning.hard_bounce, replay.changes, new=False)
    assert replay.changes.startswith("nothing:")
    assert _count(db) == 1
    # Another provider may use the same event id.
    other = handle_event(db, settings, _event("ev-1", "bounce", giorgi.email, provider="ses"))
    assert other.new and other.meaning == InboundMeaning.soft_bounce  # unclear: soft
    assert _count(db) == 2


def test_complaint_unsubscribe_and_unknown_events(db: Database, settings: Settings) -> None:
    nino, giorgi, tamar, *_ = readers(db, settings)
    complained = handle_event(db, settings, _event("c", "complaint", nino.email))
    assert complained.meaning == InboundMeaning.complaint
    assert statuses(db, nino.email) == {"daily": GONE, "weekly": GONE}
    assert suppressed(db) == {nino.email: "complaint"}

    left = handle_event(
        db, settings, _event("u", "unsubscribe", giorgi.email, message_id=giorgi.message_id)
    )
    assert left.meaning == InboundMeaning.unsubscribe
    assert statuses(db, giorgi.email) == {"daily": GONE, "weekly": ACTIVE}
    # Without a delivery it names no newsletter: kept, nothing changed.
    vague = handle_event(db, settings, _event("u2", "unsubscribe", tamar.email))
    assert vague.meaning == InboundMeaning.unknown
    assert statuses(db, tamar.email) == {"daily": ACTIVE, "weekly": ACTIVE}
    # A Message-ID of another reader does not redirect the event.
    soft = handle_event(
        db,
        settings,
        _event("s", "bounce", tamar.email, message_id=giorgi.message_id, status="4.2.2"),
    )
    assert soft.meaning == InboundMeaning.soft_bounce
    with db.session() as session:
        row = session.get_one(InboundMessage, soft.inbound_id)
    assert row.delivery_id is None and row.subscriber_id == tamar.subscriber_id

    stranger = handle_event(db, settings, _event("x", "bounce", "nobody@example.org"))
    assert stranger.meaning == InboundMeaning.ignored
    assert "nobody@example.org" not in suppressed(db)


def test_the_same_event_twice_at_once(db: Database, settings: Settings) -> None:
    """Two deliveries of one event racing: exactly one is applied."""
    nino, *_ = readers(db, settings)
    event = _event("race", "complaint", nino.email)
    start = threading.Barrier(2)
    results: list[Handled] = []

    def deliver() -> None:
        start.wait()
        results.append(handle_event(db, settings, event))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(result.new for result in results) == [False, True]
    assert _count(db) == 1
    with db.session() as session:
        unsubscribes = session.scalar(
            select(func.count())
            .select_from(SubscriberEvent)
            .where(SubscriberEvent.inbound_id.is_not(None))  # not the readers' sign-up events
        )
    assert unsubscribes == 3  # two unsubscribes and one suppression, once


def test_purge_old_keeps_the_history(db: Database, settings: Settings) -> None:
    nino, giorgi, *_ = readers(db, settings)
    now = utcnow()
    old = now - timedelta(days=settings.inbound_retention_days + 1)
    recent = now - timedelta(days=settings.inbound_retention_days - 1)
    about = {"READER": nino.email, "MESSAGE_ID": nino.message_id}
    raw = sample("postfix_511", RETURN_PATH=nino.return_path, **about)
    handle_message(db, settings, raw, nino.return_path, "pipe", old)
    kept = handle_message(
        db, settings, b"Subject: hi\n\nhello\n", giorgi.return_path, "pipe", recent
    )
    assert purge_old(db, settings, now) == 1
    with db.session() as session:
        assert list(session.scalars(select(InboundMessage.id))) == [kept.inbound_id]
        event = session.scalars(
            select(SubscriberEvent).where(
                SubscriberEvent.kind.not_in([HistoryKind.added, HistoryKind.confirmed])
            )
        ).one()
    assert event.subscriber_id == nino.subscriber_id and event.inbound_id is None
    assert suppressed(db) == {nino.email: "hard_bounce"}
    assert purge_old(db, settings, now) == 0
