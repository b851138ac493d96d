"""Import subscribers from CSV into one newsletter, set-based and re-runnable.

The file is streamed into a staging table (COPY on PostgreSQL), merged per address in SQL, and
then applied in batches of ``import_batch_size`` addresses, each batch its own transaction, so
an interrupted import can simply be run again. Rules, per address:

- a suppressed address is skipped (never created, never subscribed, never activated);
- a new address becomes a subscriber; for a known one, the file's non-empty values replace
  the stored ones and its attributes are merged in;
- a missing subscription is created (active with ``confirmed``, else pending); a pending one
  becomes active with ``confirmed``; an unsubscribed one stays unsubscribed.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    cast,
    exists,
    func,
    literal,
    select,
    text,
    update,
)

from tidings.audience.imports.csvrows import RowError, SubscriberRow
from tidings.audience.imports.staging import (
    create_staging,
    drop_staging,
    import_merged,
    load_rows,
    merge_duplicates,
)
from tidings.db.clauses import is_suppressed
from tidings.db.dialect import PRESERVE_ROWCOUNT, is_postgres, upsert_insert
from tidings.db.models import (
    Cadence,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tidings.db.types import JsonDocument, utcnow


@dataclass
class ImportReport:
    """What an import did; ``invalid`` lists the refused rows with their line numbers."""

    rows_read: int = 0
    addresses: int = 0
    duplicates_merged: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    subscribed: int = 0
    activated: int = 0
    kept_unsubscribed: int = 0
    suppressed: int = 0
    invalid: list[RowError] = field(default_factory=list)

    def summary(self) -> list[tuple[str, int]]:
        """The counts, labelled for people."""
        return [
            ("rows read", self.rows_read),
            ("new subscribers", self.created),
            ("subscribers updated", self.updated),
            ("subscribers unchanged", self.unchanged),
            ("duplicate rows merged", self.duplicates_merged),
            ("new subscriptions", self.subscribed),
            ("subscriptions activated", self.activated),
            ("left unsubscribed", self.kept_unsubscribed),
            ("suppressed, skipped", self.suppressed),
            ("invalid rows", len(self.invalid)),
        ]


ProgressCallback = Callable[[str, int, int], None]
"""Called with (phase, done, total); total is 0 while unknown."""


@dataclass(frozen=True)
class ImportOptions:
    """Which newsletter, how the consent is recorded, and the batch size."""

    newsletter_id: int
    confirmed: bool
    consent_source: str
    batch_size: int


#: Rows read from a file or a list of records: valid ones, and refusals with their reason.
ImportItems = Iterable[SubscriberRow | RowError]


def stage_rows(
    connection: Connection,
    items: ImportItems,
    report: ImportReport,
    batch_size: int,
    progress: ProgressCallback | None = None,
) -> None:
    """Count the rows, note the invalid ones, and load the valid ones into the staging table
    in batches."""
    batch: list[SubscriberRow] = []
    for item in items:
        report.rows_read += 1
        if isinstance(item, RowError):
            report.invalid.append(item)
        else:
            batch.append(item)
        if len(batch) >= batch_size:
            load_rows(connection, batch)
            batch.clear()
            if progress:
                progress("reading", report.rows_read, 0)
    load_rows(connection, batch)
    if progress:
        progress("reading", report.rows_read, 0)


def _attributes_merge(connection: Connection, stored: Any, incoming: Any) -> Any:
    if is_postgres(connection):
        return stored.op("||")(incoming)
    return func.json_patch(stored, incoming)


def _as_json(connection: Connection, text_value: Any) -> Any:
    # On SQLite, CAST(... AS JSON) would apply numeric affinity; the text is stored as is.
    if is_postgres(connection):
        return cast(text_value, JsonDocument)
    return text_value


def _attributes_differ(connection: Connection, merged: Any, stored: Any) -> ColumnElement[bool]:
    if is_postgres(connection):
        differs: ColumnElement[bool] = merged.is_distinct_from(stored)
    else:
        # SQLite stores JSON as text: compare the canonical (minified) forms.
        differs = merged.is_distinct_from(func.json(stored))
    return differs


def _apply_batch(
    connection: Connection, options: ImportOptions, low: int, high: int, report: ImportReport
) -> None:
    now = utcnow()
    m = import_merged.c
    in_batch = m.seq.between(low, high)
    suppressed = is_suppressed(m.email)
    eligible = and_(in_batch, ~suppressed)
    known = exists().where(Subscriber.email == m.email)

    batch_size = connection.scalar(select(func.count()).where(in_batch)) or 0
    eligible_count = connection.scalar(select(func.count()).where(eligible)) or 0
    existing = connection.scalar(select(func.count()).where(eligible, known)) or 0
    report.suppressed += batch_size - eligible_count

    upserted = _upsert_subscribers(connection, eligible, now)
    created = eligible_count - existing
    report.created += created
    report.updated += upserted - created
    report.unchanged += existing - (upserted - created)

    ids_in_batch = (
        select(Subscriber.id).join(import_merged, Subscriber.email == m.email).where(eligible)
    )
    report.subscribed += _create_subscriptions(connection, options, eligible, now)
    in_this_newsletter = and_(
        Subscription.newsletter_id == options.newsletter_id,
        Subscription.subscriber_id.in_(ids_in_batch),
    )
    if options.confirmed:
        activated = connection.execute(
            update(Subscription)
            .where(in_this_newsletter, Subscription.status == SubscriptionStatus.pending)
            .values(status=SubscriptionStatus.active, confirmed_at=now, updated_at=now)
        )
        report.activated += activated.rowcount
    report.kept_unsubscribed += (
        connection.scalar(
            select(func.count())
            .select_from(Subscription)
            .where(in_this_newsletter, Subscription.status == SubscriptionStatus.unsubscribed)
        )
        or 0
    )


def _upsert_subscribers(
    connection: Connection, eligible: ColumnElement[bool], now: datetime
) -> int:
    """Insert new subscribers and update changed ones; returns rows inserted plus updated."""
    m = import_merged.c
    source = select(
        m.email,
        m.name,
        m.locale,
        m.timezone,
        _as_json(connection, m.attributes),
        literal(now, Subscriber.created_at.type),
        literal(now, Subscriber.updated_at.type),
    ).where(eligible)
    statement = upsert_insert(connection)(Subscriber).from_select(
        ["email", "name", "locale", "timezone", "attributes", "created_at", "updated_at"], source
    )
    new = statement.excluded
    stored = Subscriber.__table__.c
    merged_attributes = _attributes_merge(connection, stored.attributes, new.attributes)
    name = func.coalesce(new.name, stored.name)
    locale = func.coalesce(new.locale, stored.locale)
    timezone = func.coalesce(new.timezone, stored.timezone)
    statement = statement.on_conflict_do_update(
        index_elements=["email"],
        set_={
            "name": name,
            "locale": locale,
            "timezone": timezone,
            "attributes": merged_attributes,
            "updated_at": new.updated_at,
        },
        where=(
            name.is_distinct_from(stored.name)
            | locale.is_distinct_from(stored.locale)
            | timezone.is_distinct_from(stored.timezone)
            | _attributes_differ(connection, merged_attributes, stored.attributes)
        ),
    )
    return connection.execute(statement, execution_options=PRESERVE_ROWCOUNT).rowcount


def _create_subscriptions(
    connection: Connection, options: ImportOptions, eligible: ColumnElement[bool], now: datetime
) -> int:
    """Create the missing subscriptions of this batch (INSERT ... SELECT, conflicts skipped)."""
    status = SubscriptionStatus.active if options.confirmed else SubscriptionStatus.pending
    source = (
        select(
            Subscriber.id,
            literal(options.newsletter_id),
            literal(status.value),
            literal(Cadence.daily.value),
            literal(now, Subscription.consent_at.type),
            literal("import"),
            literal(options.consent_source),
            literal(now if options.confirmed else None, Subscription.confirmed_at.type),
            literal(now, Subscription.created_at.type),
            literal(now, Subscription.updated_at.type),
        )
        .join(import_merged, Subscriber.email == import_merged.c.email)
        .where(eligible)
    )
    statement = (
        upsert_insert(connection)(Subscription)
        .from_select(
            [
                "subscriber_id",
                "newsletter_id",
                "status",
                "cadence",
                "consent_at",
                "consent_method",
                "consent_source",
                "confirmed_at",
                "created_at",
                "updated_at",
            ],
            source,
        )
        .on_conflict_do_nothing(index_elements=["subscriber_id", "newsletter_id"])
    )
    return connection.execute(statement, execution_options=PRESERVE_ROWCOUNT).rowcount


def import_rows_into(
    connection: Connection,
    items: ImportItems,
    options: ImportOptions,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Run a whole import of ``items`` (from ``csvrows``) on ``connection``, committing after
    each batch."""
    report = ImportReport()
    create_staging(connection)
    try:
        stage_rows(connection, items, report, options.batch_size, progress)
        report.addresses = merge_duplicates(connection)
        report.duplicates_merged = report.rows_read - len(report.invalid) - report.addresses
        connection.commit()
        for low in _batch_starts(report.addresses, options.batch_size):
            _apply_batch(connection, options, low, low + options.batch_size - 1, report)
            connection.commit()
            if progress:
                progress(
                    "merging", min(low + options.batch_size - 1, report.addresses), report.addresses
                )
    finally:
        connection.rollback()
        drop_staging(connection)
        connection.commit()
    refresh_statistics(connection)
    return report


def refresh_statistics(connection: Connection) -> None:
    """ANALYZE after a bulk change, so the planner does not plan with an empty table's
    statistics until autovacuum gets round to it (PostgreSQL; SQLite plans without them)."""
    if is_postgres(connection):
        connection.execute(text("ANALYZE subscribers, subscriptions"))
        connection.commit()


def _batch_starts(total: int, size: int) -> Iterable[int]:
    return range(1, total + 1, size)
