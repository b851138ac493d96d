"""Fan-out: one queued delivery per reader of an edition, in one INSERT ... SELECT."""

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Text,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
)
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
    zone_rule: ColumnElement[bool] | None = None,
) -> list[ColumnElement[bool]]:
    """Who gets an edition: the one rule, for :func:`fan_out` and :func:`recipient_count`.

    Active, unsuppressed subscriptions of the newsletter (of ``cadence`` when given) whose
    section choice the edition meets, and whose subscriber ``zone_rule`` accepts when given
    (the readers of one zone of a reader-time newsletter: :mod:`tidings.compose.zones`); the
    caller joins Subscriber to Subscription.
    """
    rule = [
        Subscription.newsletter_id == newsletter_id,
        Subscription.status == SubscriptionStatus.active,
        ~is_suppressed(Subscriber.email),
        wants_sections(session, sections),
    ]
    if cadence is not None:
        rule.append(Subscription.cadence == cadence)
    if zone_rule is not None:
        rule.append(zone_rule)
    return rule


def recipient_count(
    session: Session,
    newsletter_id: int,
    sections: Sequence[str] = (),
    cadence: Cadence | None = None,
    zone_rule: ColumnElement[bool] | None = None,
) -> int:
    """How many readers :func:`fan_out` would queue the edition to now."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Subscription)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(*readers_of(session, newsletter_id, sections, cadence, zone_rule))
        )
        or 0
    )


def section_choices(
    session: Session, readers: list[ColumnElement[bool]]
) -> list[tuple[str | None, int]]:
    """The distinct section choices among ``readers`` (a :func:`readers_of` rule), each as
    its stored JSON text (None: no choice), with how many readers made it: one query.

    The text is what :func:`fan_out` matches a reader's choice by, so a choice is found the
    same way it was counted, whatever order or spelling its JSON has.
    """
    choice = chosen_text()
    rows = session.execute(
        select(choice, func.count())
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(*readers)
        .group_by(choice)
    )
    return [(text, int(count)) for text, count in rows]


def chosen_text() -> ColumnElement[str]:
    """A subscription's section choice as its stored JSON text (canonical on PostgreSQL)."""
    return cast(Subscription.sections, Text)


def opaque_token(session: Session) -> ColumnElement[str]:
    """32 random hex digits, drawn per row by the database (a UUID on PostgreSQL, 16 random
    bytes on SQLite): a Message-ID part that says nothing about whom it went to."""
    if is_postgres(session):
        return func.replace(cast(func.gen_random_uuid(), String), "-", "")
    return func.lower(func.hex(func.randomblob(16)))


def fan_out(
    session: Session,
    edition_id: int,
    newsletter_id: int,
    message_id_domain: str,
    now: datetime,
    sections: Sequence[str] = (),
    cadence: Cadence | None = None,
    variants: Mapping[int, Collection[str]] | None = None,
    zone_rule: ColumnElement[bool] | None = None,
) -> int:
    """One queued delivery per active, unsuppressed subscription, in one INSERT ... SELECT.

    Only subscriptions of ``cadence`` when given (a scheduled edition); subscribers who chose
    sections of interest get the edition only when it carries one of them. ``variants`` maps
    an :class:`~tidings.db.models.EditionVariant` id to the stored choices (as
    :func:`section_choices` gives them) whose readers get it; everyone else gets the
    edition's own parts. The Message-ID is fixed here, per delivery, so every retry reuses
    it; its random part never names the reader. Rows already there are kept: a second call
    for the same edition adds only readers it did not have.
    """
    message_id = (
        literal(f"<tidings.{edition_id}.")
        + opaque_token(session)
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
            _variant_of(variants or {}),
        )
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(*readers_of(session, newsletter_id, sections, cadence, zone_rule))
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
                "variant_id",
            ],
            source,
        )
        .on_conflict_do_nothing(index_elements=["edition_id", "subscriber_id"])
    )
    result = session.execute(statement, execution_options=PRESERVE_ROWCOUNT)
    return row_count(result)


def _variant_of(variants: Mapping[int, Collection[str]]) -> ColumnElement[int | None]:
    """The variant a reader gets, by their stored choice: a simple CASE on the choice's text,
    which the database works out once per row (not once per variant)."""
    whens = {
        stored: literal(variant_id, Integer)
        for variant_id, choices in sorted(variants.items())
        for stored in sorted(choices)
    }
    if not whens:
        return cast(null(), Integer)
    return case(whens, value=chosen_text(), else_=cast(null(), Integer))
