"""A newsletter's subscribers as CSV (those an audience filter matches, else all), in a form
the importer reads back: keyset pages by subscriber id, formula-looking cells guarded. The
status column is the reader's status as the console shows it: a suppressed address is
``bounced`` or ``suppressed``, never ``active``."""

import csv
from collections.abc import Iterator
from datetime import datetime
from io import StringIO
from typing import TextIO

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from tidings.audience.imports.csvrows import EXPORT_COLUMNS, guard_cells
from tidings.audience.search import AudienceFilter
from tidings.catalog.counts import reader_status
from tidings.catalog.newsletters import newsletter_by_slug
from tidings.db.dialect import is_postgres
from tidings.db.engine import Database
from tidings.db.models import Subscriber, Subscription

EXPORT_PAGE = 5_000


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


def _export_page(
    session: Session, newsletter_id: int, audience: AudienceFilter, last_id: int
) -> list[tuple[Subscriber, Subscription, str]]:
    """One keyset page by subscriber id after ``last_id``: constant cost per page however
    long the list."""
    page = session.execute(
        select(Subscriber, Subscription, reader_status())
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(
            Subscription.newsletter_id == newsletter_id,
            Subscriber.id > last_id,
            *audience.where(),
        )
        .order_by(Subscriber.id)
        .limit(EXPORT_PAGE)
    ).all()
    return [(subscriber, subscription, str(status)) for subscriber, subscription, status in page]


def export_chunks(db: Database, slug: str, audience: AudienceFilter | None = None) -> Iterator[str]:
    """The newsletter's subscribers (those ``audience`` matches, else all) as CSV text,
    importable again: the header, then one chunk per page of :data:`EXPORT_PAGE`, each read
    in a short session of its own, so a web response streams it in bounded memory."""
    return (text for text, _ in _chunks(db, slug, audience))


def _chunks(db: Database, slug: str, audience: AudienceFilter | None) -> Iterator[tuple[str, int]]:
    """:func:`export_chunks`, each chunk with how many subscribers it holds."""
    with db.session() as session:
        newsletter_id = newsletter_by_slug(session, slug).id
        attribute_keys = _attribute_keys(session, newsletter_id)
    matching = audience or AudienceFilter()
    if matching.status is not None:
        # The status column describes this newsletter's subscription: filter on it too.
        matching = AudienceFilter(newsletter_id, matching.status, matching.query)
    out = StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(guard_cells([*EXPORT_COLUMNS, *attribute_keys]))
    yield out.getvalue(), 0
    last_id = 0
    while True:
        with db.session() as session:
            page = _export_page(session, newsletter_id, matching, last_id)
        if not page:
            return
        out.seek(0)
        out.truncate()
        for subscriber, subscription, status in page:
            values = [
                subscriber.email,
                subscriber.name or "",
                subscriber.locale or "",
                subscriber.timezone or "",
                status,
                _iso(subscription.consent_at),
                subscription.consent_method or "",
                _iso(subscription.confirmed_at),
                _iso(subscription.unsubscribed_at),
                *(str(subscriber.attributes.get(key, "")) for key in attribute_keys),
            ]
            writer.writerow(guard_cells(values))
        yield out.getvalue(), len(page)
        last_id = page[-1][0].id


def export_subscribers(
    db: Database, slug: str, out: TextIO, audience: AudienceFilter | None = None
) -> int:
    """Write the newsletter's subscribers (those ``audience`` matches, else all) as CSV,
    importable again; returns the row count."""
    written = 0
    for text, rows in _chunks(db, slug, audience):
        out.write(text)
        written += rows
    return written


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""
