"""Ledger and inbound rows of the way back, for the bounce list and sender-health tests (the
reports, the console and the API): two editions, readers at three receiving domains,
send-time refusals of every kind, and an inbound message of each meaning.

Expected figures (last 7 days), worked out by hand:

============  ====  =======  =======
domain        sent  refused  bounced
============  ====  =======  =======
mail.ex.com   2     1        1        (DMARC 5.7.26 refusal; a reputation bounce)
post.ex.ge    1     2        0        (5.7.1 spam; a Spamhaus block with no 5.7 code)
(unknown)     0     0        1        (a policy bounce naming nobody)
============  ====  =======  =======

other.example.org refused 5.1.1 (hard, not policy); a 4.7.1 deferral is no refusal; the
older edition's 5.7.1 (30 days ago) is outside the window.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from tests.builders import newsletter
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryFeedback,
    DeliveryState,
    Edition,
    EditionKind,
    EditionStatus,
    HistoryKind,
    InboundMeaning,
    InboundMessage,
    Subscriber,
    SubscriberEvent,
    Suppression,
    SuppressionReason,
)
from tidings.feedback.history import record, suppressed_detail

POST, MAIL, OTHER = "post.example.ge", "mail.example.com", "other.example.org"
SPAMHAUS = "Service unavailable; Client host [203.0.113.9] blocked using Spamhaus"


@dataclass
class Seeded:
    edition_id: int
    old_edition_id: int
    #: Delivery id by a short name (the reader's first name; "erased" for the anonymous one).
    deliveries: dict[str, int] = field(default_factory=dict)
    subscribers: dict[str, int] = field(default_factory=dict)


#: name, domain, state, reply code, reply, feedback, inbound meaning and its status line.
ROWS: list[tuple[str, str, DeliveryState, int | None, str | None, str | None, str | None]] = [
    ("alice", POST, DeliveryState.failed, 550, "5.7.1 Message rejected as spam", None, None),
    ("bob", POST, DeliveryState.failed, 554, SPAMHAUS, None, None),
    ("carol", POST, DeliveryState.sent, 250, "2.0.0 OK", None, None),
    ("dato", MAIL, DeliveryState.failed, 550, "5.7.26 Unauthenticated mail: DMARC", None, None),
    ("eka", MAIL, DeliveryState.sent, 250, "OK", "bounced", "policy"),
    ("gia", MAIL, DeliveryState.sent, 250, "OK", "complained", "complaint"),
    ("irakli", OTHER, DeliveryState.failed, 550, "5.1.1 User unknown", None, None),
    ("lela", OTHER, DeliveryState.sent, 250, "OK", "bounced", "hard_bounce"),
    ("maka", OTHER, DeliveryState.sent, 250, "OK", "bounced", "soft_bounce"),
    ("nino", OTHER, DeliveryState.sent, 250, "OK", None, "auto_reply"),
    ("otar", POST, DeliveryState.deferred, 451, "4.7.1 Try again later", None, None),
    ("pati", OTHER, DeliveryState.sent, 250, "OK", None, "unsubscribe"),
]
STATUS = {
    "policy": ("5.7.1", "550 5.7.1 Poor sender reputation"),
    "complaint": (None, "abuse report, type abuse"),
    "hard_bounce": ("5.1.1", "550 5.1.1 No such user"),
    "soft_bounce": ("4.2.2", "452 4.2.2 Mailbox full"),
    "auto_reply": (None, "Out of office"),
    "unsubscribe": (None, None),
}


def _edition(db: Database, newsletter_id: int, created: datetime) -> int:
    with db.session() as session:
        edition = Edition(
            newsletter_id=newsletter_id,
            kind=EditionKind.oneoff,
            status=EditionStatus.sent,
            subject="Panjikidze meets envoys",
            created_at=created,
        )
        session.add(edition)
        session.commit()
        return edition.id


def seed(db: Database) -> Seeded:
    """The rows the module docstring describes."""
    now = datetime.now(UTC)
    newsletter_id = newsletter(db)
    seeded = Seeded(_edition(db, newsletter_id, now), _edition(db, newsletter_id, now))
    with db.session() as session:
        for name, domain, state, code, reply, feedback, meaning in ROWS:
            reader = Subscriber(email=f"{name}@{domain}", name=name.title())
            session.add(reader)
            session.flush()
            seeded.subscribers[name] = reader.id
            delivery = Delivery(
                edition_id=seeded.edition_id,
                subscriber_id=reader.id,
                state=state,
                attempts=1,
                last_attempt_at=now - timedelta(hours=1),
                last_reply_code=code,
                last_reply=reply,
                message_id=f"<{name}@messenger.example.ge>",
                sent_at=now - timedelta(hours=1) if state == DeliveryState.sent else None,
                feedback=DeliveryFeedback(feedback) if feedback else None,
            )
            session.add(delivery)
            session.flush()
            seeded.deliveries[name] = delivery.id
            if meaning is not None:
                status, diagnostic = STATUS[meaning]
                session.add(
                    InboundMessage(
                        channel="pipe",
                        meaning=InboundMeaning(meaning),
                        status=status,
                        diagnostic=diagnostic,
                        delivery_id=delivery.id,
                        subscriber_id=reader.id,
                        recipient_domain=domain,
                        changes=f"{meaning} of {name}@{domain}",
                        received_at=now - timedelta(minutes=30),
                    )
                )
        erased = Delivery(
            edition_id=seeded.edition_id,
            subscriber_id=None,
            state=DeliveryState.failed,
            attempts=1,
            last_attempt_at=now - timedelta(hours=1),
            last_reply_code=550,
            last_reply="5.7.1 Rejected",
            message_id="<erased@messenger.example.ge>",
        )
        old = Delivery(
            edition_id=seeded.old_edition_id,
            subscriber_id=seeded.subscribers["alice"],
            state=DeliveryState.failed,
            attempts=1,
            last_attempt_at=now - timedelta(days=30),
            last_reply_code=550,
            last_reply="5.7.1 Message rejected as spam",
            message_id="<alice-old@messenger.example.ge>",
        )
        session.add_all([erased, old])
        session.add_all(
            [
                InboundMessage(channel="webhook", provider="ses", event_id="e-1",
                               meaning=InboundMeaning.policy, status="5.7.1",
                               diagnostic="554 5.7.1 Blocked", received_at=now),
                InboundMessage(channel="pipe", meaning=InboundMeaning.ignored,
                               changes="nothing: forged return path", received_at=now),
            ]
        )  # fmt: skip
        session.flush()
        seeded.deliveries["erased"] = erased.id
        session.commit()
    return seeded


def suppressed_with_history(db: Database, seeded: Seeded, name: str) -> int:
    """The reader ``name`` suppressed for a hard bounce, as the inbound path leaves it: the
    suppression and its history event (whose id is returned), plus an older bounce point."""
    email = f"{name}@{OTHER}"
    now = datetime.now(UTC)
    with db.session() as session:
        subscriber_id = seeded.subscribers[name]
        record(session, subscriber_id, HistoryKind.bounce_point, "452 4.2.2 Mailbox full",
               now - timedelta(days=2))  # fmt: skip
        session.add(
            Suppression(
                email=email, reason=SuppressionReason.hard_bounce, detail="550 5.1.1 No such user"
            )
        )
        detail = suppressed_detail(SuppressionReason.hard_bounce, "550 5.1.1 No such user")
        record(session, subscriber_id, HistoryKind.suppressed, detail, now)
        session.commit()
        return int(
            session.scalar(
                select(func.max(SubscriberEvent.id)).where(
                    SubscriberEvent.subscriber_id == subscriber_id
                )
            )
            or 0
        )
