"""Confirmation mails an admin asks for: to pending readers added by the API, the CLI, the
console or an import without consent, one at a time (resend) or all who are waiting.

Every mail is claimed with the sign-up's own :func:`claim_confirmation` (at most one per
address and newsletter per ``CONFIRMATION_INTERVAL``) and sent by a :class:`SignupQueue`, so
an admin's click obeys the same limit and the same few SMTP conversations as the public form.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select

from tidings.audience.membership import is_suppressed as address_suppressed
from tidings.audience.signup import (
    ConfirmationDue,
    SignupQueue,
    claim_confirmation,
)
from tidings.audience.suppressions import reader_suppressed
from tidings.catalog.newsletters import newsletter_by_slug
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Newsletter, Subscriber, Subscription, SubscriptionStatus
from tidings.db.types import utcnow
from tidings.errors import InvalidInput, NotFound

#: At most this many confirmations are claimed per request: the queue holds 500 in all,
#: and the rest stay waiting for the next click.
BATCH = 200


def _waiting(newsletter_id: int | None) -> list[ColumnElement[bool]]:
    """Pending, never mailed, and not suppressed: who the console says is waiting.

    The first two are the predicate of the partial index ``ix_subscriptions_waiting``, so
    only the waiting subscriptions are read (not every subscription), and each one's
    suppression is looked up by its subscriber (not by reading every subscriber)."""
    conditions: list[ColumnElement[bool]] = [
        Subscription.status == SubscriptionStatus.pending,
        Subscription.confirmation_sent_at.is_(None),
        ~reader_suppressed(Subscription.subscriber_id),
    ]
    if newsletter_id is not None:
        conditions.append(Subscription.newsletter_id == newsletter_id)
    return conditions


def waiting(db: Database, slug: str | None = None) -> int:
    """How many pending subscriptions (of newsletter ``slug``, else of all) never had a
    confirmation mail."""
    with db.session() as session:
        newsletter_id = newsletter_by_slug(session, slug).id if slug else None
        return (
            session.scalar(
                select(func.count()).select_from(Subscription).where(*_waiting(newsletter_id))
            )
            or 0
        )


def claim_waiting(
    db: Database,
    slug: str,
    source: str,
    since: datetime | None = None,
    limit: int = BATCH,
) -> list[ConfirmationDue]:
    """Claim the confirmation mails of up to ``limit`` waiting subscriptions of newsletter
    ``slug`` (those created at or after ``since``, when given: an import's own)."""
    now = utcnow()
    with db.session() as session:
        newsletter = newsletter_by_slug(session, slug)
        statement = (
            select(Subscription.id, Subscriber.email, Subscriber.name)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(*_waiting(newsletter.id))
            .order_by(Subscription.id)
            .limit(limit)
        )
        if since is not None:
            statement = statement.where(Subscription.created_at >= since)
        dues = [
            ConfirmationDue(subscription_id, email, name, None, newsletter, source)
            for subscription_id, email, name in session.execute(statement).all()
            if claim_confirmation(session, subscription_id, now)
        ]
        session.commit()
        return dues


def claim_one(db: Database, subscription_id: int, source: str) -> ConfirmationDue | None:
    """Claim the confirmation mail of one pending subscription (an admin's resend); None when
    one went less than ``CONFIRMATION_INTERVAL`` ago. :class:`NotFound` for an unknown
    subscription; :class:`InvalidInput` when it is not pending or the address is
    suppressed."""
    now = utcnow()
    with db.session() as session:
        row = session.execute(
            select(Subscription, Subscriber.email, Subscriber.name, Newsletter)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .join(Newsletter, Newsletter.id == Subscription.newsletter_id)
            .where(Subscription.id == subscription_id)
        ).first()
        if row is None:
            raise NotFound(f"no subscription {subscription_id}")
        subscription, email, name, newsletter = row
        if subscription.status != SubscriptionStatus.pending:
            raise InvalidInput(
                f"{email} is {subscription.status.value} in {newsletter.name}: only a pending "
                "subscription is sent a confirmation"
            )
        if address_suppressed(session, email):
            raise InvalidInput(f"{email} is on the suppression list: nothing is sent to it")
        previous = subscription.confirmation_sent_at
        claimed = claim_confirmation(session, subscription_id, now)
        session.commit()
        if not claimed:
            return None
        return ConfirmationDue(subscription_id, email, name, previous, newsletter, source)


@dataclass(frozen=True)
class Sent:
    """What a request to send confirmations did: queued now, and still waiting after."""

    queued: int
    waiting: int


def queue_all(queue: SignupQueue, dues: Sequence[ConfirmationDue]) -> int:
    """Hand claimed confirmations to the sign-up queue; how many it took."""
    return sum(1 for due in dues if queue.mail(due))


async def mail_now(db: Database, settings: Settings, dues: Sequence[ConfirmationDue]) -> None:
    """Send claimed confirmations and wait for them (the CLI, which has no running queue):
    a queue of their own, closed when they are done."""
    queue = SignupQueue(db, settings, backlog=max(len(dues), 1))
    queue_all(queue, dues)
    await queue.close(grace=60.0 + len(dues))
