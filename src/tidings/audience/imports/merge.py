"""The merge step of an import: the staged, deduplicated addresses of one batch become
subscribers and subscriptions, in a few set-based statements (the rules are in
:mod:`tidings.audience.imports.importer`).
"""

from dataclasses import dataclass
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
    update,
)

from tidings.audience.imports.pgmerge import subscribe_batch
from tidings.audience.imports.staging import import_merged
from tidings.db.clauses import is_suppressed
from tidings.db.dialect import PRESERVE_ROWCOUNT, is_postgres, upsert_insert
from tidings.db.models import (
    Cadence,
    HistoryKind,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tidings.db.types import JsonDocument, utcnow
from tidings.feedback.history import record_each


@dataclass(frozen=True)
class ImportOptions:
    """Which newsletter, how the consent is recorded, and the batch size."""

    newsletter_id: int
    confirmed: bool
    consent_source: str
    batch_size: int


@dataclass
class MergeCounts:
    """What the merge did to the addresses it was given, summed over the batches."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    subscribed: int = 0
    activated: int = 0
    kept_unsubscribed: int = 0
    suppressed: int = 0

    def add(self, other: "MergeCounts") -> None:
        """Add another batch's counts to these."""
        for name in MergeCounts.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


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


def apply_batch(
    connection: Connection, options: ImportOptions, low: int, high: int, report: MergeCounts
) -> None:
    """Merge the staged addresses numbered ``low`` to ``high`` into subscribers and
    subscriptions (not committed), counting what happened in ``report``."""
    now = utcnow()
    m = import_merged.c
    in_batch = m.seq.between(low, high)
    suppressed = is_suppressed(m.email)
    eligible = and_(in_batch, ~suppressed)
    known = exists().where(Subscriber.email == m.email)

    batch_size, eligible_count, existing = connection.execute(
        select(
            func.count(),
            func.count().filter(~suppressed),
            func.count().filter(and_(~suppressed, known)),
        ).where(in_batch)
    ).one()
    report.suppressed += batch_size - eligible_count

    upserted = _upsert_subscribers(connection, eligible, now)
    created = eligible_count - existing
    report.created += created
    report.updated += upserted - created
    report.unchanged += existing - (upserted - created)

    if is_postgres(connection):
        made, made_active, unsubscribed = subscribe_batch(
            connection,
            options.newsletter_id,
            options.confirmed,
            options.consent_source,
            low,
            high,
            now,
        )
        report.subscribed += made
        report.activated += made_active
        report.kept_unsubscribed += unsubscribed
        return
    ids_in_batch = (
        select(Subscriber.id).join(import_merged, Subscriber.email == m.email).where(eligible)
    )
    report.subscribed += _create_subscriptions(connection, options, eligible, now)
    in_this_newsletter = and_(
        Subscription.newsletter_id == options.newsletter_id,
        Subscription.subscriber_id.in_(ids_in_batch),
    )
    # Each new subscription, and each pending one made active, is an event of its reader's
    # history: one INSERT ... SELECT each, like the rest of the merge.
    made_now = select(Subscription.subscriber_id, Subscription.newsletter_id).where(
        in_this_newsletter, Subscription.created_at == literal(now, Subscription.created_at.type)
    )
    record_each(connection, made_now, HistoryKind.imported, options.consent_source, now, "import")
    if options.confirmed:
        confirming = select(Subscription.subscriber_id, Subscription.newsletter_id).where(
            in_this_newsletter, Subscription.status == SubscriptionStatus.pending
        )
        record_each(
            connection, confirming, HistoryKind.confirmed, options.consent_source, now, "import"
        )
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
