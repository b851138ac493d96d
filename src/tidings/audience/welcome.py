"""The welcome mail: one message to a reader whose subscription has just become active, with
the newsletter's latest edition linked (or its archive, before the first edition).

Who gets one (the reader's own doing only):

- a reader confirming the double opt-in (the button behind the confirmation link);
- a reader rejoining an unsubscribed newsletter in the preference centre.

Nobody else: an admin adding, importing or activating readers (console, CLI, API) sends no
welcome, so importing an existing list never mails everybody at once (those front doors'
``send_confirmation`` options are unchanged), and the "undo" on the goodbye page restores
a subscription the reader left a minute ago rather than starting one. A newsletter with
``welcome_enabled`` off sends none; a suppressed address is never mailed.

Once per activation: the sender claims the welcome with one conditional UPDATE of
``subscriptions.welcome_sent_at`` (active, not suppressed, newsletter's welcome on, and no
welcome within :data:`REWELCOME_AFTER`), so two presses of the button or two processes
never send two. A resubscribe does not reset the column: the claim itself lets a reader
back once the last welcome is older than :data:`REWELCOME_AFTER`, so a returning reader is
welcomed again, while one who flips a checkbox off and on in an afternoon is not mailed
twice, and no other write races with the claim.

A welcome that fails (refused, unreachable, cancelled at shutdown) gives its claim back; a
crash between claim and send loses it: at most once, never twice, as for the confirmation.

It is list mail, so it carries List-Id and List-Unsubscribe (the signed link and the
mailto) with the one-click header, like the digest. It goes through the sign-up queue's few
SMTP conversations after the reader has been answered (:class:`~tidings.audience.signup.
SignupQueue`), and its return path is the subscription's notice address, as the
confirmation's. Names and edition subjects reach the templates as values only.
"""

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from tidings.audience.suppressions import reader_suppressed
from tidings.catalog.readerfacing import footer_paragraphs, postal_line
from tidings.config import Settings
from tidings.crontab import schedule_in_words
from tidings.db.clauses import listed_publicly
from tidings.db.dialect import row_count
from tidings.db.engine import Database
from tidings.db.models import (
    Cadence,
    Edition,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tidings.db.types import utcnow
from tidings.mail.direct import send_now
from tidings.mail.dkim.store import load_signer
from tidings.mail.edition import address_domain
from tidings.mail.links import Links
from tidings.mail.notice import notice_message, subscription_notice
from tidings.mail.returnpath import Role, bounce_domain, tagged_address

log = logging.getLogger(__name__)

#: A subscription is welcomed again only when its last welcome is older than this.
REWELCOME_AFTER = timedelta(days=30)


@dataclass(frozen=True)
class LatestEdition:
    """The newest edition in the newsletter's public archive."""

    subject: str
    url: str
    #: Its date in words, in the newsletter's time zone ("Monday, 7 December 2026").
    date_label: str


@dataclass(frozen=True)
class WelcomeDue:
    """A welcome this process has claimed (or, for a preview, would send)."""

    subscription_id: int
    email: str
    name: str | None
    #: ``welcome_sent_at`` before the claim (given back if the send fails).
    previous_sent_at: datetime | None
    claimed_at: datetime
    newsletter: Newsletter
    latest: LatestEdition | None
    #: Which digest the reader chose (the weekly one has its own schedule).
    cadence: Cadence = Cadence.daily


def claim_welcome(session: Session, subscription_id: int, now: datetime) -> bool:
    """Claim the right to welcome the subscription now, by one conditional UPDATE: only
    while it is active, its address not suppressed, its newsletter's welcome on, and no
    welcome went out within :data:`REWELCOME_AFTER`. Racing claims: one wins. Not
    committed."""
    welcoming = select(Newsletter.id).where(Newsletter.welcome_enabled.is_(True))
    claimed = session.execute(
        update(Subscription)
        .where(
            Subscription.id == subscription_id,
            Subscription.status == SubscriptionStatus.active,
            ~reader_suppressed(Subscription.subscriber_id),
            Subscription.newsletter_id.in_(welcoming),
            or_(
                Subscription.welcome_sent_at.is_(None),
                Subscription.welcome_sent_at <= now - REWELCOME_AFTER,
            ),
        )
        .values(welcome_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    return row_count(claimed) == 1


def _date_label(moment: datetime, timezone: str) -> str:
    try:
        local = moment.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        local = moment
    return f"{local:%A}, {local.day} {local:%B %Y}"


def latest_edition(
    session: Session, settings: Settings, newsletter: Newsletter
) -> LatestEdition | None:
    """The newsletter's newest public edition, or None before its first."""
    row = session.execute(
        select(Edition.id, Edition.subject, Edition.started_at, Edition.created_at)
        .join(Newsletter, Newsletter.id == Edition.newsletter_id)
        .where(Edition.newsletter_id == newsletter.id, listed_publicly())
        .order_by(Edition.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    edition_id, subject, started, created = row
    links = Links(settings.base_url, settings.secret)
    return LatestEdition(
        subject=subject or newsletter.name,
        url=links.archive(newsletter.slug, edition_id),
        date_label=_date_label(started or created, newsletter.timezone),
    )


def _due(
    session: Session,
    settings: Settings,
    subscription_id: int,
    previous: datetime | None,
    now: datetime,
) -> WelcomeDue | None:
    row = session.execute(
        select(Subscriber.email, Subscriber.name, Newsletter, Subscription.cadence)
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .join(Newsletter, Newsletter.id == Subscription.newsletter_id)
        .where(Subscription.id == subscription_id)
    ).first()
    if row is None:
        return None
    email, name, newsletter, cadence = row
    latest = latest_edition(session, settings, newsletter)
    session.expunge(newsletter)
    return WelcomeDue(subscription_id, email, name, previous, now, newsletter, latest, cadence)


def take_welcome(db: Database, settings: Settings, subscription_id: int) -> WelcomeDue | None:
    """Claim and commit the subscription's welcome; what to send, or None when none is due."""
    now = utcnow()
    with db.session() as session:
        previous = session.scalar(
            select(Subscription.welcome_sent_at).where(Subscription.id == subscription_id)
        )
        if not claim_welcome(session, subscription_id, now):
            session.rollback()
            return None
        session.commit()
        return _due(session, settings, subscription_id, previous, now)


def release_welcome(db: Database, due: WelcomeDue) -> None:
    """Give a failed welcome's claim back (only if it is still this claim), so the reader's
    next activation can welcome them."""
    with db.session() as session:
        session.execute(
            update(Subscription)
            .where(
                Subscription.id == due.subscription_id,
                Subscription.welcome_sent_at == due.claimed_at,
            )
            .values(welcome_sent_at=due.previous_sent_at)
        )
        session.commit()


def welcome_context(settings: Settings, due: WelcomeDue) -> dict[str, Any]:
    """What the welcome templates are given: values only, never template source."""
    newsletter = due.newsletter
    links = Links(settings.base_url, settings.secret)
    weekly = due.cadence == Cadence.weekly and newsletter.weekly_schedule_cron is not None
    cron = newsletter.weekly_schedule_cron if weekly else None
    # A reader-time newsletter comes at the reader's own clock, not the newsletter's.
    your_time = "your time" if newsletter.reader_time else None
    schedule = schedule_in_words(cron or newsletter.schedule_cron, newsletter.timezone, your_time)
    return {
        "newsletter": newsletter,
        "name": due.name,
        "email": due.email,
        "latest": due.latest,
        "archive_url": links.archive(newsletter.slug),
        "schedule": schedule,
        "postal_address": postal_line(newsletter.postal_address),
        "footer_paragraphs": footer_paragraphs(newsletter.footer_text),
        "unsubscribe_url": links.unsubscribe(due.subscription_id),
        "preferences_url": links.preferences(due.subscription_id),
    }


def welcome_mail(settings: Settings, due: WelcomeDue) -> tuple[str, bytes]:
    """The envelope sender and bytes of the welcome for ``due``: list mail, with List-Id
    and List-Unsubscribe (signed link, mailto, one-click) like the digest."""
    newsletter = due.newsletter
    domain = bounce_domain(settings.bounce_domain, newsletter.from_address)
    mailto = tagged_address(settings.secret, Role.unsubscribe, due.subscription_id, domain)
    context = welcome_context(settings, due)
    list_id = (newsletter.name, f"{newsletter.slug}.{address_domain(newsletter.from_address)}")
    unsubscribe = f"<{context['unsubscribe_url']}>, <mailto:{mailto}?subject=unsubscribe>"
    headers = {
        "List-Unsubscribe": unsubscribe,
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Precedence": "bulk",
    }
    sender, notice = subscription_notice(
        settings, newsletter, due.subscription_id, due.email, due.name, list_id
    )
    return sender, notice_message(settings, "welcome", notice, context, headers)


def render_welcome(db: Database, settings: Settings, subscription_id: int) -> bytes:
    """The welcome message the subscription would get now, without claiming or sending it
    (for checkers and previews); raises LookupError for an unknown subscription."""
    with db.session() as session:
        due = _due(session, settings, subscription_id, None, utcnow())
    if due is None:
        raise LookupError(f"no subscription {subscription_id}")
    return welcome_mail(settings, due)[1]


async def send_welcome(db: Database, settings: Settings, subscription_id: int) -> bool:
    """Claim, build and send the subscription's welcome; True when it went. A failure is
    logged and the claim given back (also when cancelled at shutdown)."""
    try:
        due = await asyncio.to_thread(take_welcome, db, settings, subscription_id)
    except Exception:  # the database away, say: no welcome this time
        log.exception("welcome for subscription %s not claimed", subscription_id)
        return False
    if due is None:
        return False
    try:
        signer = await asyncio.to_thread(load_signer, db, settings, due.newsletter.from_address)
        sender, message = await asyncio.to_thread(welcome_mail, settings, due)
        await send_now(settings, sender, due.email, message, signer)
    except Exception:
        log.exception("welcome mail for subscription %s not sent", subscription_id)
        await asyncio.to_thread(release_welcome, db, due)
        return False
    except asyncio.CancelledError:
        release_welcome(db, due)  # shutting down: give it back before the loop ends
        raise
    return True
