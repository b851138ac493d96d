"""A newsletter's subscribers as CSV (those an audience filter matches, else all), in a form
the importer reads back: keyset pages by subscriber id, formula-looking cells guarded. The
status column is the reader's status as the console shows it: a suppressed address is
``bounced`` or ``suppressed``, never ``active``."""

import csv
from collections.abc import Iterator
from datetime import datetime
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


def _export_pages(
    session: Session, newsletter_id: int, audience: AudienceFilter
) -> Iterator[list[tuple[Subscriber, Subscription, str]]]:
    """Keyset pages by subscriber id: constant cost per page however long the list."""
    last_id = 0
    while True:
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
        if not page:
            return
        yield [(subscriber, subscription, str(status)) for subscriber, subscription, status in page]
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
            written += len(page)
    return written


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""
