"""The send ledger: fan-out, claims with leases, results, reclaims and counts.

These are query helpers: they run on the session they are given and never commit.
"""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from tidings.db.dialect import upsert_insert
from tidings.db.models import (
    Cadence,
    Delivery,
    DeliveryState,
    Edition,
    EditionStatus,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)

OPEN_STATES = (DeliveryState.queued, DeliveryState.sending, DeliveryState.deferred)
DUE_STATES = (DeliveryState.queued, DeliveryState.deferred)


def wants_sections(session: Session, sections: Sequence[str]) -> ColumnElement[bool]:
    """Subscriptions that chose no sections, or chose one that the edition carries."""
    chosen = Subscription.sections
    if session.get_bind().dialect.name == "postgresql":
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
    suppressed = exists().where(Suppression.email == Subscriber.email)
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
        .where(
            Subscription.newsletter_id == newsletter_id,
            Subscription.status == SubscriptionStatus.active,
            ~suppressed,
            wants_sections(session, sections),
        )
    )
    if cadence is not None:
        source = source.where(Subscription.cadence == cadence)
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
    result = session.execute(statement, execution_options={"preserve_rowcount": True})
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Claim:
    """A delivery this worker now holds a lease on."""

    delivery_id: int
    edition_id: int
    subscriber_id: int | None
    message_id: str
    attempts: int
    created_at: datetime


def claim_due(
    session: Session, worker: str, limit: int, lease: timedelta, now: datetime
) -> list[Claim]:
    """Lease up to ``limit`` due deliveries of editions that are sending.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim side by side
    without waiting on, or taking, each other's rows.
    """
    due = (
        select(Delivery.id)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(
            Delivery.state.in_(DUE_STATES),
            Delivery.next_attempt_at <= now,
            Edition.status == EditionStatus.sending,
        )
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True, of=Delivery)
    rows = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()))
        .values(
            state=DeliveryState.sending,
            lease_owner=worker,
            lease_expires_at=now + lease,
            attempts=Delivery.attempts + 1,
            last_attempt_at=now,
        )
        .returning(
            Delivery.id,
            Delivery.edition_id,
            Delivery.subscriber_id,
            Delivery.message_id,
            Delivery.attempts,
            Delivery.created_at,
        )
        .execution_options(synchronize_session=False)
    )
    return sorted((Claim(*row) for row in rows), key=lambda claim: claim.delivery_id)


@dataclass(frozen=True)
class Recipient:
    """Who a claimed delivery goes to, if they may still be mailed."""

    subscriber_id: int
    subscription_id: int
    email: str
    name: str | None


def recipients(
    session: Session, newsletter_id: int, subscriber_ids: Sequence[int]
) -> dict[int, Recipient]:
    """The subscribers among ``subscriber_ids`` who are still active and not suppressed."""
    suppressed = exists().where(Suppression.email == Subscriber.email)
    rows = session.execute(
        select(Subscriber.id, Subscription.id, Subscriber.email, Subscriber.name)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(
            # Driven by the (subscriber_id, newsletter_id) unique index: one probe per id.
            Subscription.subscriber_id.in_(subscriber_ids),
            Subscription.newsletter_id == newsletter_id,
            Subscription.status == SubscriptionStatus.active,
            ~suppressed,
        )
    )
    return {row[0]: Recipient(*row) for row in rows}


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt, to be written behind."""

    delivery_id: int
    state: DeliveryState
    code: int | None
    reply: str
    at: datetime
    next_attempt_at: datetime | None = None
    suppress_subscriber: int | None = None


def record_outcomes(session: Session, outcomes: Sequence[Outcome]) -> None:
    """Write a batch of results: one executemany UPDATE, plus suppressions for 5.1.x."""
    if not outcomes:
        return
    outcomes = sorted(outcomes, key=lambda o: o.delivery_id)  # one lock order everywhere
    statement = (
        update(Delivery)
        .where(Delivery.id == bindparam("b_id"))
        .values(
            state=bindparam("b_state"),
            last_reply_code=bindparam("b_code"),
            last_reply=bindparam("b_reply"),
            sent_at=bindparam("b_sent_at"),
            next_attempt_at=func.coalesce(
                bindparam("b_next", type_=Delivery.next_attempt_at.type), Delivery.next_attempt_at
            ),
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    session.connection().execute(
        statement,
        [
            {
                "b_id": o.delivery_id,
                "b_state": o.state.value,
                "b_code": o.code,
                "b_reply": o.reply[:1000],
                "b_sent_at": o.at if o.state == DeliveryState.sent else None,
                "b_next": o.next_attempt_at,
            }
            for o in outcomes
        ],
    )
    to_suppress = [o.suppress_subscriber for o in outcomes if o.suppress_subscriber is not None]
    if to_suppress:
        now = outcomes[0].at
        session.execute(
            upsert_insert(session)(Suppression)
            .from_select(
                ["email", "reason", "detail", "created_at"],
                select(
                    Subscriber.email,
                    literal(SuppressionReason.hard_bounce.value),
                    literal("SMTP 5.1.x reply while sending"),
                    literal(now, Suppression.created_at.type),
                ).where(Subscriber.id.in_(to_suppress)),
            )
            .on_conflict_do_nothing(index_elements=["email"])
        )


def renew_leases(session: Session, worker: str, lease: timedelta, now: datetime) -> int:
    """Extend every lease this worker holds (called while it lives)."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.lease_owner == worker, Delivery.state == DeliveryState.sending)
        .values(lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def reclaim_expired(session: Session, now: datetime, at_most_once: bool) -> int:
    """Take back deliveries whose worker died: retried (default) or set aside as uncertain."""
    state = DeliveryState.uncertain if at_most_once else DeliveryState.queued
    expired = (
        select(Delivery.id)
        .where(Delivery.state == DeliveryState.sending, Delivery.lease_expires_at < now)
        .order_by(Delivery.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Rows a slow owner is writing right now are skipped, not waited on.
        expired = expired.with_for_update(skip_locked=True)
    result = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(expired.scalar_subquery()))
        .values(
            state=state,
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=now,
            last_reply="lease expired: the worker stopped; the message may have been sent",
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def finish_editions(session: Session, now: datetime) -> int:
    """Mark sending editions with no open deliveries as sent; how many.

    Each edition that is over (sent, or cancelled with nothing in flight) gets its counts per
    state stored once, so reports never count its deliveries again.
    """
    open_deliveries = exists().where(
        Delivery.edition_id == Edition.id, Delivery.state.in_(OPEN_STATES)
    )
    finished = session.scalars(
        update(Edition)
        .where(Edition.status == EditionStatus.sending, ~open_deliveries)
        .values(status=EditionStatus.sent, finished_at=now)
        .returning(Edition.id)
        .execution_options(synchronize_session=False)
    ).all()
    settled = session.scalars(
        select(Edition.id).where(
            Edition.status.in_((EditionStatus.sent, EditionStatus.cancelled)),
            Edition.final_counts.is_(None),
            ~open_deliveries,
        )
    ).all()
    for edition_id in sorted({*finished, *settled}):
        counts = {state.value: n for state, n in state_counts(session, edition_id).items()}
        session.execute(
            update(Edition)
            .where(Edition.id == edition_id)
            .values(final_counts=counts)
            .execution_options(synchronize_session=False)
        )
    return len(finished)


def has_due_work(session: Session, now: datetime) -> bool:
    """Whether anything is due now, or held by a lease that has not expired yet."""
    due = and_(Delivery.state.in_(DUE_STATES), Delivery.next_attempt_at <= now)
    held = Delivery.state == DeliveryState.sending
    query = (
        select(Delivery.id)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Edition.status == EditionStatus.sending, due | held)
        .limit(1)
    )
    return session.scalar(query) is not None


def state_counts(session: Session, edition_id: int) -> dict[DeliveryState, int]:
    """How many deliveries of the edition are in each state."""
    rows = session.execute(
        select(Delivery.state, func.count())
        .where(Delivery.edition_id == edition_id)
        .group_by(Delivery.state)
    )
    return {state: count for state, count in rows}


def recent_sent(session: Session, edition_id: int, since: datetime) -> int:
    """Deliveries of the edition sent since ``since`` (for the rate)."""
    return int(
        session.scalar(
            select(func.count()).where(
                Delivery.edition_id == edition_id,
                Delivery.state == DeliveryState.sent,
                Delivery.sent_at >= since,
            )
        )
        or 0
    )
