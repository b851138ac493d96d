"""Double opt-in: record a sign-up, mail one confirmation link, activate on confirmation.

Nothing but the confirmation mail goes to a pending address (fan-out takes active
subscriptions only). A sign-up never tells the visitor whether the address was known: an
active or suppressed address gets the same answer and no mail. At most one confirmation per
address and newsletter per :data:`CONFIRMATION_INTERVAL`, claimed with one conditional UPDATE
so two racing requests cannot both send.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from tidings.audience.addresses import clean_name, normalise_email
from tidings.audience.membership import is_suppressed
from tidings.audience.service import SubscriptionView, subscription_view
from tidings.audience.tokens import Purpose, sign
from tidings.compose.notice import Notice, notice_message
from tidings.config import Settings
from tidings.db.dialect import upsert_insert
from tidings.db.engine import Database
from tidings.db.models import Newsletter, Subscriber, Subscription, SubscriptionStatus
from tidings.db.types import utcnow
from tidings.deliver.direct import send_now
from tidings.deliver.transport import DeliveryError
from tidings.newsletters import newsletter_by_slug

log = logging.getLogger(__name__)
CONFIRMATION_INTERVAL = timedelta(minutes=10)


@dataclass(frozen=True)
class SignupForm:
    """What a visitor typed, and where they were (the consent record)."""

    slug: str
    email: str
    name: str | None
    ip: str | None
    page: str


@dataclass(frozen=True)
class ConfirmationDue:
    """A confirmation mail this request has claimed the right to send."""

    subscription_id: int
    email: str
    name: str | None
    previous_sent_at: datetime | None


def _subscriber_id(session: Session, email: str, name: str | None, now: datetime) -> int:
    session.execute(
        upsert_insert(session)(Subscriber)
        .values(email=email, name=name, attributes={}, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["email"])
    )
    return session.scalars(select(Subscriber.id).where(Subscriber.email == email)).one()


def _pending_subscription(
    session: Session, subscriber_id: int, newsletter_id: int, form: SignupForm, now: datetime
) -> Subscription:
    """The subscription, made pending with a fresh consent record unless it is active."""
    session.execute(
        upsert_insert(session)(Subscription)
        .values(
            subscriber_id=subscriber_id,
            newsletter_id=newsletter_id,
            status=SubscriptionStatus.pending,
            cadence="daily",
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["subscriber_id", "newsletter_id"])
    )
    subscription = session.scalars(
        select(Subscription).where(
            Subscription.subscriber_id == subscriber_id,
            Subscription.newsletter_id == newsletter_id,
        )
    ).one()
    if subscription.status != SubscriptionStatus.active:
        subscription.status = SubscriptionStatus.pending
        subscription.consent_at = now
        subscription.consent_method = "signup form"
        subscription.consent_source = form.page
        subscription.consent_ip = form.ip
    return subscription


def record_signup(db: Database, form: SignupForm, now: datetime) -> ConfirmationDue | None:
    """Record the request; the confirmation to send, or None when no mail is due."""
    address = normalise_email(form.email)
    with db.session() as session:
        newsletter = newsletter_by_slug(session, form.slug)
        if is_suppressed(session, address):
            return None
        subscriber_id = _subscriber_id(session, address, clean_name(form.name), now)
        subscription = _pending_subscription(session, subscriber_id, newsletter.id, form, now)
        if subscription.status == SubscriptionStatus.active:
            session.commit()
            return None
        previous = subscription.confirmation_sent_at
        session.flush()
        claimed = session.execute(
            update(Subscription)
            .where(
                Subscription.id == subscription.id,
                or_(
                    Subscription.confirmation_sent_at.is_(None),
                    Subscription.confirmation_sent_at <= now - CONFIRMATION_INTERVAL,
                ),
            )
            .values(confirmation_sent_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        name = session.scalar(select(Subscriber.name).where(Subscriber.id == subscriber_id))
        return ConfirmationDue(subscription.id, address, name, previous)


def release_confirmation(db: Database, due: ConfirmationDue) -> None:
    """Give the claim back after a failed send, so the visitor can try again at once."""
    with db.session() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.id == due.subscription_id)
            .values(confirmation_sent_at=due.previous_sent_at)
        )
        session.commit()


def confirmation_mail(
    settings: Settings, newsletter: Newsletter, due: ConfirmationDue
) -> tuple[str, bytes]:
    """The sender and bytes of the confirmation mail for ``due``."""
    token = sign(settings.secret, Purpose.confirm, due.subscription_id)
    notice = Notice(
        from_name=newsletter.from_name,
        from_address=newsletter.from_address,
        reply_to=newsletter.reply_to,
        to_email=due.email,
        to_name=due.name,
    )
    context = {
        "newsletter": newsletter,
        "name": due.name,
        "email": due.email,
        "confirm_url": f"{settings.base_url}/confirm/{token}",
    }
    return newsletter.from_address, notice_message(settings, "confirm", notice, context)


async def sign_up(db: Database, settings: Settings, form: SignupForm) -> bool:
    """Handle a sign-up end to end; False only if a due confirmation could not be sent.

    Database work is short and synchronous; the SMTP conversation is awaited.
    """
    due = await asyncio.to_thread(record_signup, db, form, utcnow())
    if due is None:
        return True
    newsletter = await asyncio.to_thread(_newsletter, db, form.slug)
    sender, message = confirmation_mail(settings, newsletter, due)
    try:
        await send_now(settings, sender, due.email, message)
    except DeliveryError as exc:
        log.error("confirmation mail for subscription %s not sent: %s", due.subscription_id, exc)
        await asyncio.to_thread(release_confirmation, db, due)
        return False
    return True


def _newsletter(db: Database, slug: str) -> Newsletter:
    with db.session() as session:
        return newsletter_by_slug(session, slug)


def confirm_subscription(db: Database, subscription_id: int) -> SubscriptionView | None:
    """Activate a pending subscription (idempotent); None if it no longer exists.

    An unsubscribed one stays unsubscribed: an old confirmation link does not undo leaving.
    """
    now = utcnow()
    with db.session() as session:
        session.execute(
            update(Subscription)
            .where(
                Subscription.id == subscription_id,
                Subscription.status == SubscriptionStatus.pending,
            )
            .values(status=SubscriptionStatus.active, confirmed_at=now, updated_at=now)
        )
        session.commit()
    return subscription_view(db, subscription_id)
