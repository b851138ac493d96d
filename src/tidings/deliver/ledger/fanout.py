"""Fan-out: one queued delivery per reader of an edition, in one INSERT ... SELECT."""

import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, String, case, cast, exists, func, literal, or_, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from tidings.db.clauses import is_suppressed
from tidings.db.dialect import PRESERVE_ROWCOUNT, is_postgres, row_count, upsert_insert
from tidings.db.models import (
    Cadence,
    Delivery,
    DeliveryState,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)


def wants_sections(session: Session, sections: Sequence[str]) -> ColumnElement[bool]:
    """Subscriptions that chose no sections, or chose one that the edition carries."""
    chosen = Subscription.sections
    if is_postgres(session):
        as_array = case((func.jsonb_typeof(chosen) == "array", chosen))
        no_choice = func.coalesce(func.jsonb_array_length(as_array), 0) == 0
        if not sections:
            return no_choice
        return or_(no_choice, chosen.op("?|")(postgresql.array(list(sections))))
    no_choice = func.coalesce(func.json_array_length(chosen), 0) == 0
    if not sections:
        return no_choice
    each = func.json_each(chosen).table_valued("value")
    return or_(no_choice, exists(select(each.c.value).where(each.c.value.in_(list(sections)))))


def readers_of(
    session: Session,
    newsletter_id: int,
    sections: Sequence[str] = (),
    cadence: Cadence | None = None,
) -> list[ColumnElement[bool]]:
    """Who gets an edition: the one rule, for :func:`fan_out` and :func:`recipient_count`.

    Active, unsuppressed subscriptions of the newsletter (of ``cadence`` when given) whose
    section choice the edition meets; the caller joins Subscriber to Subscription.
    """
    rule = [
        Subscription.newsletter_id == newsletter_id,
        Subscription.status == SubscriptionStatus.active,
        ~is_suppressed(Subscriber.email),
        wants_sections(session, sections),
    ]
    if cadence is not None:
        rule.append(Subscription.cadence == cadence)
    return rule


def recipient_count(
    session: Session,
    newsletter_id: int,
    sections: Sequence[str] = (),
    cadence: Cadence | None = None,
) -> int:
    """How many readers :func:`fan_out` would queue the edition to now."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Subscription)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(*readers_of(session, newsletter_id, sections, cadence))
        )
        or 0
    )


def fan_out(
    session: Session,
    edition_id: int,
    newsletter_id: int,
    message_id_domain: str,
    now: datetime,
    sections: Sequence[str] = (),
    cadence: Cadence | None = None,
) -> int:
    """One queued delivery per active, unsuppressed subscription, in one INSERT ... SELECT.

    Only subscriptions of ``cadence`` when given (a scheduled edition); subscribers who chose
    sections of interest get the edition only when it carries one of them. The Message-ID is
    fixed here, per (edition, subscriber), so every retry reuses it.
    """
    subscriber_id = cast(Subscription.subscriber_id, String)
    message_id = (
        literal(f"<tidings.{edition_id}.{secrets.token_hex(4)}.")
        + subscriber_id
        + literal(f"@{message_id_domain}>")
    )
    source = (
        select(
            literal(edition_id),
            Subscription.subscriber_id,
            literal(DeliveryState.queued.value),
            literal(0),
            literal(now, Delivery.next_attempt_at.type),
            message_id,
            literal(now, Delivery.created_at.type),
        )
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(*readers_of(session, newsletter_id, sections, cadence))
    )
    statement = (
        upsert_insert(session)(Delivery)
        .from_select(
            [
                "edition_id",
                "subscriber_id",
                "state",
                "attempts",
                "next_attempt_at",
                "message_id",
                "created_at",
            ],
            source,
        )
        .on_conflict_do_nothing(index_elements=["edition_id", "subscriber_id"])
    )
    result = session.execute(statement, execution_options=PRESERVE_ROWCOUNT)
    return row_count(result)
