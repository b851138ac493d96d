"""The mails under check, built as Tidings builds them: through storage and the real senders.

Each builder returns the HTML part exactly as a reader's mail client gets it (decoded from
the MIME message), so the checkers see personal values filled in, not template slots.
"""

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

from sqlalchemy import select

from tidings.audience.signup import SignupForm, confirmation_mail, record_signup
from tidings.audience.welcome import render_welcome
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    Edition,
    EditionVariant,
    Newsletter,
    Subscriber,
    Subscription,
)
from tidings.mail.edition import edition_mail
from tidings.sample.loader import SAMPLE_SLUG, demo_settings, load_sample


def html_part(message: bytes) -> str:
    """The text/html part of a message, decoded; fails when there is none."""
    parsed = message_from_bytes(message, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(preferencelist=("html",))
    assert body is not None, "the message has no text/html part"
    content = body.get_content()
    assert isinstance(content, str)
    return content


def sample_digest(db: Database, settings: Settings) -> str:
    """The sample publication's demo edition (its newest articles), personalised for the
    first reader it was queued for, as the delivery worker does it (deliver/worker_db.py)."""
    loaded = load_sample(db, demo_settings(settings))
    assert loaded.edition_id is not None, loaded.edition_problem
    with db.session() as session:
        edition = session.get_one(Edition, loaded.edition_id)
        newsletter = session.get_one(Newsletter, edition.newsletter_id)
        row = session.execute(
            select(
                Subscription.id,
                Subscriber.email,
                Subscriber.name,
                Delivery.message_id,
                Delivery.variant_id,
            )
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .join(
                Subscription,
                (Subscription.subscriber_id == Subscriber.id)
                & (Subscription.newsletter_id == newsletter.id),
            )
            .where(Delivery.edition_id == edition.id)
            .order_by(Delivery.id)
            .limit(1)
        ).one()
        subscription_id, email, name, message_id, variant_id = row
        # The reader's variant (their choice of sections), as the worker picks it.
        variant = session.get(EditionVariant, variant_id) if variant_id else None
        parts = (variant.html_body, variant.text_body) if variant else None
        mail = edition_mail(settings, edition, newsletter, parts=parts)
    return html_part(mail.message_for(subscription_id, email, name, message_id))


def confirmation(db: Database, settings: Settings) -> str:
    """The double opt-in confirmation a visitor gets after signing up to the sample."""
    load_sample(db, demo_settings(settings))
    form = SignupForm(
        slug=SAMPLE_SLUG,
        email="tamar.abashidze@example.ge",
        name="Tamar Abashidze",
        ip="127.0.0.1",
        page="https://messenger.example.ge/subscribe",
    )
    due = record_signup(db, form, datetime.now(UTC))
    assert due is not None, "the sign-up asked for no confirmation mail"
    _, message = confirmation_mail(settings, due)
    return html_part(message)


def welcome(db: Database, settings: Settings) -> str:
    """The welcome mail a sample reader gets once their subscription is active, with the
    sample's demo edition as the latest one it links."""
    loaded = load_sample(db, demo_settings(settings))
    with db.session() as session:
        subscription_id = session.scalar(
            select(Subscription.id)
            .where(Subscription.newsletter_id == loaded.newsletter.id)
            .order_by(Subscription.id)
            .limit(1)
        )
    assert subscription_id is not None, "the sample has no readers"
    return html_part(render_welcome(db, demo_settings(settings), subscription_id))
