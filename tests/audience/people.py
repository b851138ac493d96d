"""A small, real audience for the audience room's tests: two newsletters, five people in
several states, one of them suppressed, and an edition with deliveries."""

from dataclasses import dataclass

from sqlalchemy import select

from tidings.audience.service import add_subscriber, unsubscribe
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryState,
    Edition,
    EditionKind,
    EditionStatus,
    Subscriber,
    Subscription,
    Suppression,
    SuppressionReason,
)


@dataclass(frozen=True)
class Audience:
    daily: int
    weekly: int
    #: Subscriber id by address.
    ids: dict[str, int]


def audience(db: Database) -> Audience:
    """``daily`` ("Zeta Daily") and ``weekly`` ("Alpha Weekly"), and these people:

    - ana@example.ge "Ana Beridze": daily active, weekly active
    - bob@example.ge "Bob": daily pending, suppressed (hard bounce)
    - cara_x@example.ge "Cara 100%": daily unsubscribed
    - dato@example.ge "Dato": weekly active
    - eka@example.ge: weekly pending
    """
    daily = create_newsletter(
        db, NewsletterSpec(slug="daily", name="Zeta Daily", sender="D <d@example.ge>")
    ).id
    weekly = create_newsletter(
        db, NewsletterSpec(slug="weekly", name="Alpha Weekly", sender="W <w@example.ge>")
    ).id
    ids = {}
    for slug, email, name, confirmed in [
        ("daily", "ana@example.ge", "Ana Beridze", True),
        ("weekly", "ana@example.ge", None, True),
        ("daily", "bob@example.ge", "Bob", False),
        ("daily", "cara_x@example.ge", "Cara 100%", True),
        ("weekly", "dato@example.ge", "Dato", True),
        ("weekly", "eka@example.ge", None, False),
    ]:
        ids[email] = add_subscriber(db, slug, email, name, confirmed, "test").subscriber_id
    with db.session() as session:
        cara = session.scalar(
            select(Subscription.id).where(Subscription.subscriber_id == ids["cara_x@example.ge"])
        )
        session.add(Suppression(email="bob@example.ge", reason=SuppressionReason.hard_bounce))
        session.commit()
    assert cara is not None
    unsubscribe(db, cara)
    return Audience(daily, weekly, ids)


def deliveries(db: Database, newsletter_id: int, subscriber_id: int, subjects: list[str]) -> None:
    """One sent edition per subject, each with a delivery to the subscriber, in that order."""
    with db.session() as session:
        for n, subject in enumerate(subjects):
            edition = Edition(
                newsletter_id=newsletter_id,
                kind=EditionKind.oneoff,
                status=EditionStatus.sent,
                subject=subject,
            )
            session.add(edition)
            session.flush()
            session.add(
                Delivery(
                    edition_id=edition.id,
                    subscriber_id=subscriber_id,
                    state=DeliveryState.sent,
                    attempts=1,
                    message_id=f"<{subscriber_id}.{n}@example.ge>",
                    last_reply="250 ok",
                )
            )
        session.commit()


def emails(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Subscriber.email)))
