"""Subscriber services: add one, import a CSV, export a newsletter's list."""

import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from tidings.audience.imports.csvrows import EXPORT_COLUMNS, guard_cells, read_records, read_rows
from tidings.audience.imports.importer import (
    ImportItems,
    ImportOptions,
    ImportReport,
    ProgressCallback,
    import_rows_into,
)
from tidings.audience.membership import is_suppressed, leave
from tidings.audience.search import AudienceFilter
from tidings.catalog.newsletters import newsletter_by_slug
from tidings.db.dialect import is_postgres
from tidings.db.engine import Database
from tidings.db.models import (
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tidings.db.types import utcnow
from tidings.errors import InvalidInput, NotFound
from tidings.mail.addresses import DEFAULT_LIMITS, AttributeLimits, clean_name, normalise_email

EXPORT_PAGE = 5_000


@dataclass(frozen=True)
class AddResult:
    """The outcome of adding one subscriber to one newsletter."""

    email: str
    status: SubscriptionStatus
    created_subscriber: bool
    changed: bool
    note: str
    subscriber_id: int


def add_subscriber(
    db: Database, slug: str, email: str, name: str | None, confirmed: bool, source: str
) -> AddResult:
    """Add ``email`` to newsletter ``slug`` (pending, or active with ``confirmed``)."""
    address = normalise_email(email)
    clean = clean_name(name)
    now = utcnow()
    with db.session() as session:
        newsletter = newsletter_by_slug(session, slug)
        if is_suppressed(session, address):
            raise InvalidInput(f"{address} is on the suppression list and cannot be subscribed")
        subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
        created = subscriber is None
        if subscriber is None:
            subscriber = Subscriber(email=address, name=clean, attributes={})
            session.add(subscriber)
            session.flush()
        elif clean and clean != subscriber.name:
            subscriber.name = clean
        subscription = session.scalar(
            select(Subscription).where(
                Subscription.subscriber_id == subscriber.id,
                Subscription.newsletter_id == newsletter.id,
            )
        )
        wanted = SubscriptionStatus.active if confirmed else SubscriptionStatus.pending
        if subscription is None:
            subscription = Subscription(
                subscriber_id=subscriber.id,
                newsletter_id=newsletter.id,
                status=wanted,
                consent_at=now,
                consent_method="admin",
                consent_source=source,
                confirmed_at=now if confirmed else None,
            )
            session.add(subscription)
            note = f"subscribed ({wanted.value})"
        elif subscription.status == SubscriptionStatus.unsubscribed:
            note = "unsubscribed earlier; not resubscribed (they must sign up again)"
        elif subscription.status == SubscriptionStatus.pending and confirmed:
            subscription.status = SubscriptionStatus.active
            subscription.confirmed_at = now
            note = "confirmed (pending -> active)"
        else:
            note = f"already {subscription.status.value}"
        changed = bool(session.new or session.dirty)
        session.commit()
        return AddResult(address, subscription.status, created, changed, note, subscriber.id)


def subscription_for(
    session: Session, newsletter_id: int, email: str
) -> tuple[int, str, str | None]:
    """(subscription id, address, name) of ``email`` in the newsletter, or :class:`NotFound`."""
    address = normalise_email(email)
    row = session.execute(
        select(Subscription.id, Subscriber.email, Subscriber.name)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.newsletter_id == newsletter_id, Subscriber.email == address)
    ).first()
    if row is None:
        raise NotFound(f"{address} is not subscribed to this newsletter")
    return row[0], row[1], row[2]


@dataclass(frozen=True)
class SubscriptionView:
    """What the public pages show about a subscription reached through a signed link."""

    subscription_id: int
    email: str
    newsletter_name: str
    newsletter_slug: str
    status: SubscriptionStatus
    subscriber_id: int


def subscription_view(db: Database, subscription_id: int) -> SubscriptionView | None:
    """The subscription behind a link, or None if it no longer exists."""
    with db.session() as session:
        row = session.execute(
            select(
                Subscription.id,
                Subscriber.email,
                Newsletter.name,
                Newsletter.slug,
                Subscription.status,
                Subscription.subscriber_id,
            )
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .join(Newsletter, Newsletter.id == Subscription.newsletter_id)
            .where(Subscription.id == subscription_id)
        ).first()
    return SubscriptionView(*row) if row else None


def unsubscribe(db: Database, subscription_id: int) -> SubscriptionView | None:
    """Unsubscribe (idempotent); the next editions skip this person. None if unknown."""
    with db.session() as session:
        leave(session, utcnow(), Subscription.id == subscription_id)
        session.commit()
    return subscription_view(db, subscription_id)


def _import(
    db: Database,
    slug: str,
    items: ImportItems,
    confirmed: bool,
    batch_size: int,
    source: str,
    progress: ProgressCallback | None,
) -> ImportReport:
    with db.session() as session:
        newsletter_id = newsletter_by_slug(session, slug).id
    options = ImportOptions(
        newsletter_id=newsletter_id,
        confirmed=confirmed,
        consent_source=source,
        batch_size=batch_size,
    )
    with db.engine.connect() as connection:
        return import_rows_into(connection, items, options, progress)


def import_subscribers(
    db: Database,
    slug: str,
    path: Path,
    confirmed: bool,
    batch_size: int,
    progress: ProgressCallback | None = None,
    limits: AttributeLimits = DEFAULT_LIMITS,
) -> ImportReport:
    """Import a CSV file of subscribers into newsletter ``slug`` (see ``importer``); rows
    with more attributes than ``limits`` allow are refused with the reason."""
    try:
        stream = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    with stream:
        try:
            rows = read_rows(stream, limits)
            return _import(
                db, slug, rows, confirmed, batch_size, f"csv import: {path.name}", progress
            )
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{path} is not UTF-8 text: {exc.reason}") from None


def import_records(
    db: Database,
    slug: str,
    records: Sequence[Mapping[str, str]],
    confirmed: bool,
    batch_size: int,
    limits: AttributeLimits = DEFAULT_LIMITS,
) -> ImportReport:
    """Import subscribers given as objects (the API's bulk import), through the same
    validating, merging, set-based path as a CSV file; refusals name the record's position."""
    rows = read_records(records, limits)
    return _import(db, slug, rows, confirmed, batch_size, "api import", None)


def _attribute_keys(session: Session, newsletter_id: int) -> list[str]:
    """Every attribute name used by the newsletter's subscribers (one set-based query)."""
    members = (
        select(Subscriber.attributes)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(Subscription.newsletter_id == newsletter_id)
        .subquery()
    )
    if is_postgres(session):
        query = select(func.jsonb_object_keys(members.c.attributes)).distinct()
    else:
        each = func.json_each(members.c.attributes).table_valued("key")
        query = select(each.c.key).select_from(members).join(each, true()).distinct()
    return sorted(str(key) for key in session.scalars(query) if str(key) not in EXPORT_COLUMNS)


def _export_pages(
    session: Session, newsletter_id: int, audience: AudienceFilter
) -> Iterator[list[tuple[Subscriber, Subscription]]]:
    """Keyset pages by subscriber id: constant cost per page however long the list."""
    last_id = 0
    while True:
        page = session.execute(
            select(Subscriber, Subscription)
            .join(Subscription, Subscription.subscriber_id == Subscriber.id)
            .where(
                Subscription.newsletter_id == newsletter_id,
                Subscriber.id > last_id,
                *audience.where(),
            )
            .order_by(Subscriber.id)
            .limit(EXPORT_PAGE)
        ).all()
        if not page:
            return
        yield [(subscriber, subscription) for subscriber, subscription in page]
        last_id = page[-1][0].id
        session.expunge_all()


def export_subscribers(
    db: Database, slug: str, out: TextIO, audience: AudienceFilter | None = None
) -> int:
    """Write the newsletter's subscribers (those ``audience`` matches, else all) as CSV,
    importable again; returns the row count."""
    written = 0
    with db.session() as session:
        newsletter_id = newsletter_by_slug(session, slug).id
        attribute_keys = _attribute_keys(session, newsletter_id)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(guard_cells([*EXPORT_COLUMNS, *attribute_keys]))
        matching = audience or AudienceFilter()
        if matching.status is not None:
            # The status column describes this newsletter's subscription: filter on it too.
            matching = AudienceFilter(newsletter_id, matching.status, matching.query)
        for page in _export_pages(session, newsletter_id, matching):
            for subscriber, subscription in page:
                values = [
                    subscriber.email,
                    subscriber.name or "",
                    subscriber.locale or "",
                    subscriber.timezone or "",
                    subscription.status.value,
                    _iso(subscription.consent_at),
                    subscription.consent_method or "",
                    _iso(subscription.confirmed_at),
                    _iso(subscription.unsubscribed_at),
                    *(str(subscriber.attributes.get(key, "")) for key in attribute_keys),
                ]
                writer.writerow(guard_cells(values))
            written += len(page)
    return written


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""
