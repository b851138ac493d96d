"""Double opt-in: record a sign-up, mail one confirmation link, activate on confirmation.

Nothing but the confirmation mail goes to a pending address (fan-out takes active
subscriptions only). A sign-up never tells the visitor whether the address was known: an
active or suppressed address gets the same answer and no mail. At most one confirmation per
address and newsletter per :data:`CONFIRMATION_INTERVAL`, claimed with one conditional UPDATE
so two racing requests cannot both send.

The request only checks the address and queues the sign-up; a :class:`SignupQueue` records it
and sends the confirmation after the visitor has been answered. Every answer so takes the same
path: an answer that waited for SMTP (or for the extra rows a new address needs) would take
longer for a new address than for a known one, and tell anyone with a stopwatch who is
subscribed.

The reader's own confirmation (:func:`confirm_and_welcome`) then queues the welcome mail
(:mod:`tidings.audience.welcome`) on the same queue; an admin's activation does not.
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from tidings.audience.membership import is_suppressed
from tidings.audience.service import SubscriptionView, subscription_view
from tidings.audience.suppressions import reader_suppressed
from tidings.audience.welcome import send_welcome
from tidings.catalog.newsletters import newsletter_by_slug
from tidings.catalog.urls import web_origin
from tidings.config import Settings
from tidings.db.dialect import row_count, upsert_insert
from tidings.db.engine import Database
from tidings.db.models import (
    HistoryKind,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tidings.db.types import utcnow
from tidings.errors import InvalidInput
from tidings.feedback.history import record
from tidings.mail.addresses import clean_name, normalise_email
from tidings.mail.direct import send_now
from tidings.mail.dkim.store import load_signer
from tidings.mail.links import confirm_path
from tidings.mail.notice import notice_message, subscription_notice
from tidings.mail.tokens import Purpose, sign

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
    #: As the sign-up found it: the confirmation is its mail.
    newsletter: Newsletter
    #: Who asked for it (web for a sign-up; console, api or cli for an admin's resend).
    source: str = "web"


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
    """The subscription, made pending unless it is active.

    Anyone can type an address into the form, so a sign-up never rewrites a consent record
    that exists (an unsubscribed reader's earlier consent, or the first request of a pending
    one): only a subscription without one gets this request's details. The proof of the
    double opt-in is ``confirmed_at``, set when the mailbox's owner presses the button."""
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
        if subscription.consent_at is None:
            subscription.consent_at = now
            subscription.consent_method = "signup form"
            subscription.consent_source = form.page
            subscription.consent_ip = form.ip
    return subscription


def claim_confirmation(session: Session, subscription_id: int, now: datetime) -> bool:
    """Claim the right to mail the subscription's confirmation now: at most one per
    :data:`CONFIRMATION_INTERVAL`, and only while it is pending and its address is not
    suppressed, by one conditional UPDATE, so racing requests (a sign-up, an admin's resend,
    the reader unsubscribing, confirming or complaining in between) cannot both send, nor
    mail one no longer due. Not committed."""
    claimed = session.execute(
        update(Subscription)
        .where(
            Subscription.id == subscription_id,
            Subscription.status == SubscriptionStatus.pending,
            ~reader_suppressed(Subscription.subscriber_id),
            or_(
                Subscription.confirmation_sent_at.is_(None),
                Subscription.confirmation_sent_at <= now - CONFIRMATION_INTERVAL,
            ),
        )
        .values(confirmation_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    return row_count(claimed) == 1


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
        claimed = claim_confirmation(session, subscription.id, now)
        if claimed:
            record(
                session,
                subscriber_id,
                HistoryKind.signed_up,
                form.page[:200] or None,
                now,
                newsletter.id,
                source="web",
            )
        session.commit()
        if not claimed:
            return None
        name = session.scalar(select(Subscriber.name).where(Subscriber.id == subscriber_id))
        return ConfirmationDue(subscription.id, address, name, previous, newsletter)


def still_due(db: Database, due: ConfirmationDue) -> bool:
    """Whether a claimed confirmation may still go, just before it is sent: the
    subscription is pending and its address not suppressed (a queued one can wait behind
    hundreds; a complaint or an unsubscribe may come in between)."""
    with db.session() as session:
        status = session.scalar(
            select(Subscription.status).where(Subscription.id == due.subscription_id)
        )
        return status == SubscriptionStatus.pending and not is_suppressed(session, due.email)


def confirmation_mailed(db: Database, due: ConfirmationDue) -> None:
    """A ``confirm_mailed`` event in the reader's history, once the mail has gone."""
    with db.session() as session:
        row = session.execute(
            select(Subscription.subscriber_id, Subscription.newsletter_id).where(
                Subscription.id == due.subscription_id
            )
        ).first()
        if row is not None:
            record(
                session,
                row[0],
                HistoryKind.confirm_mailed,
                None,
                utcnow(),
                row[1],
                source=due.source,
            )
            session.commit()


def release_confirmation(db: Database, due: ConfirmationDue) -> None:
    """Give the claim back after a failed send, so the visitor can try again at once."""
    with db.session() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.id == due.subscription_id)
            .values(confirmation_sent_at=due.previous_sent_at)
        )
        session.commit()


def confirmation_mail(settings: Settings, due: ConfirmationDue) -> tuple[str, bytes]:
    """The envelope sender and bytes of the confirmation mail for ``due``. The sender is the
    subscription's signed notice address on the bounce domain, so a bounce names it."""
    newsletter = due.newsletter
    token = sign(settings.secret, Purpose.confirm, due.subscription_id)
    context = {
        "newsletter": newsletter,
        "name": due.name,
        "email": due.email,
        "confirm_url": settings.base_url + confirm_path(token),
    }
    sender, notice = subscription_notice(
        settings, newsletter, due.subscription_id, due.email, due.name
    )
    return sender, notice_message(settings, "confirm", notice, context)


@dataclass
class SignupQueue:
    """Records sign-ups and sends their confirmation mail in the background, after the
    visitor has been answered.

    At most ``backlog`` sign-ups are in hand and ``concurrency`` SMTP conversations open:
    beyond that a sign-up is dropped and logged (the visitor can try again), so a flood never
    grows memory or connections without bound. A confirmation that fails for any reason (or
    is cancelled at shutdown) gives its claim back, so the next try can send at once.
    """

    db: Database
    settings: Settings
    concurrency: int = 4
    backlog: int = 500
    _tasks: set["asyncio.Task[None]"] = field(default_factory=set, init=False, repr=False)
    _slots: asyncio.Semaphore | None = field(default=None, init=False, repr=False)

    def submit(self, form: SignupForm, now: datetime) -> bool:
        """Queue a sign-up, returning at once; False when the queue is full."""
        if len(self._tasks) >= self.backlog:
            log.warning("sign-up queue full; a sign-up to %s was dropped", form.slug)
            return False
        task = asyncio.create_task(self._work(form, now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def close(self, grace: float = 10.0) -> None:
        """On shutdown: let queued sign-ups finish for up to ``grace`` seconds, then cancel
        the rest (a cancelled confirmation gives its claim back)."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    def mail(self, due: ConfirmationDue) -> bool:
        """Send a confirmation already claimed (an admin's resend) through the same few SMTP
        conversations as the sign-ups'; False when the queue is full."""
        if len(self._tasks) >= self.backlog:
            log.warning(  # by its subscription: logs carry no reader's address
                "sign-up queue full; subscription %s was not sent its confirmation",
                due.subscription_id,
            )
            release_confirmation(self.db, due)
            return False
        task = asyncio.create_task(self._confirm(due))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def welcome(self, subscription_id: int) -> bool:
        """Queue the welcome of a subscription that has just become active (claimed and sent
        by :func:`~tidings.audience.welcome.send_welcome`, through the same few SMTP
        conversations); False when the queue is full (the welcome is then skipped)."""
        if len(self._tasks) >= self.backlog:
            log.warning("sign-up queue full; subscription %s was not welcomed", subscription_id)
            return False
        task = asyncio.create_task(self._welcome(subscription_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _welcome(self, subscription_id: int) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        async with self._slots:
            await send_welcome(self.db, self.settings, subscription_id)

    async def _work(self, form: SignupForm, now: datetime) -> None:
        try:
            due = await asyncio.to_thread(record_signup, self.db, form, now)
        except Exception:
            log.exception("sign-up to %s not recorded", form.slug)
            return
        if due is not None:
            await self._confirm(due)

    async def _confirm(self, due: ConfirmationDue) -> None:
        """Send the claimed confirmation (a few SMTP conversations at a time); on any failure,
        waiting or sending, give the claim back."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        try:
            async with self._slots:
                if not await asyncio.to_thread(still_due, self.db, due):
                    log.info("confirmation for subscription %s no longer due", due.subscription_id)
                    await asyncio.to_thread(release_confirmation, self.db, due)
                    return
                signer = await asyncio.to_thread(
                    load_signer, self.db, self.settings, due.newsletter.from_address
                )
                sender, message = confirmation_mail(self.settings, due)
                await send_now(self.settings, sender, due.email, message, signer)
            await asyncio.to_thread(confirmation_mailed, self.db, due)
        except Exception:
            # Refused, unreachable, or a bug: log it and free the claim, whatever it was.
            log.exception("confirmation mail for subscription %s not sent", due.subscription_id)
            await asyncio.to_thread(release_confirmation, self.db, due)
        except asyncio.CancelledError:
            release_confirmation(self.db, due)  # shutting down: give it back before the loop ends
            raise


def sign_up(queue: SignupQueue, form: SignupForm) -> None:
    """Check the address (raising :class:`InvalidAddress` for the visitor to correct) and
    queue the sign-up; the same quick path whatever the address, known or not."""
    normalise_email(form.email)
    queue.submit(form, utcnow())


def origin_of(url: str | None) -> str | None:
    """The web origin (``https://host[:port]``) of an absolute http(s) URL, None otherwise
    (no URL, "null", a relative or odd one)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        return web_origin(f"{parts.scheme}://{parts.netloc}")
    except (InvalidInput, ValueError):
        return None


def embed_allowed(
    allowed: Sequence[str], base_url: str, origin: str | None, referer: str | None
) -> bool:
    """Whether a sign-up posted without our form's token may subscribe in one step: the
    request's ``Origin`` (or, only when it sends none, its ``Referer``'s origin) is exactly
    one of the newsletter's allowed origins or our own site's. Anything else (another site,
    no header, "null", a look-alike host, another scheme or port) gets the confirm step, so
    a foreign page cannot sign people up unseen. Either way the confirmation mail follows."""
    sent = origin_of(origin) if origin is not None else origin_of(referer)
    if sent is None:
        return False
    own = origin_of(base_url)
    return sent == own or sent in {origin_of(item) for item in allowed}


def _activate(db: Database, subscription_id: int, source: str) -> bool:
    """Make a pending subscription active; True when this call did it (a second press,
    an active or an unsubscribed one: False). A ``confirmed`` event from ``source`` goes
    into the history."""
    now = utcnow()
    with db.session() as session:
        confirmed = session.execute(
            update(Subscription)
            .where(
                Subscription.id == subscription_id,
                Subscription.status == SubscriptionStatus.pending,
            )
            .values(status=SubscriptionStatus.active, confirmed_at=now, updated_at=now)
            .returning(Subscription.subscriber_id, Subscription.newsletter_id)
        ).first()
        if confirmed is not None:
            record(
                session, confirmed[0], HistoryKind.confirmed, None, now, confirmed[1], source=source
            )
        session.commit()
    return confirmed is not None


def confirm_subscription(
    db: Database, subscription_id: int, source: str = "web"
) -> SubscriptionView | None:
    """Activate a pending subscription (idempotent); None if it no longer exists. A
    ``confirmed`` event from ``source`` (web: the reader's link) goes into the history.

    An unsubscribed one stays unsubscribed: an old confirmation link does not undo leaving.
    No welcome mail: an admin's activation (console, API) welcomes nobody; the reader's own
    press goes through :func:`confirm_and_welcome`.
    """
    _activate(db, subscription_id, source)
    return subscription_view(db, subscription_id)


async def confirm_and_welcome(queue: SignupQueue, subscription_id: int) -> SubscriptionView | None:
    """The reader's press of the confirmation button: activate the subscription and, when
    this press activated it, queue its welcome mail; None if it no longer exists. Returns
    without waiting for SMTP."""
    if await asyncio.to_thread(_activate, queue.db, subscription_id, "web"):
        queue.welcome(subscription_id)
    return await asyncio.to_thread(subscription_view, queue.db, subscription_id)
