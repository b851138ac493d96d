"""The send ledger: fan-out, claims with leases, results, reclaims and counts.

These are query helpers: they run on the session they are given and never commit.
"""

import secrets
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
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

from tidings.db.clauses import is_suppressed
from tidings.db.dialect import PRESERVE_ROWCOUNT, is_postgres, row_count, upsert_insert
from tidings.db.models import (
    Cadence,
    Delivery,
    DeliveryState,
    Edition,
    EditionStatus,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tidings.deliver import refusals

OPEN_STATES = (DeliveryState.queued, DeliveryState.sending, DeliveryState.deferred)
DUE_STATES = (DeliveryState.queued, DeliveryState.deferred)


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
    suppressed = is_suppressed(Subscriber.email)
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
    result = session.execute(statement, execution_options=PRESERVE_ROWCOUNT)
    return row_count(result)


@dataclass(frozen=True)
class Claim:
    """A delivery this worker now holds a lease on."""

    delivery_id: int
    edition_id: int
    subscriber_id: int | None
    message_id: str
    attempts: int
    created_at: datetime
    lease_token: str

    def outcome(
        self,
        state: DeliveryState,
        code: int | None,
        reply: str,
        at: datetime,
        next_attempt_at: datetime | None = None,
        suppress: bool = False,
    ) -> "Outcome":
        """The result of this attempt, fenced by this claim's lease token."""
        return Outcome(
            self.delivery_id,
            self.lease_token,
            self.edition_id,
            state,
            code,
            reply,
            at,
            next_attempt_at,
            self.subscriber_id if suppress else None,
        )


def claim_due(
    session: Session, lease_token: str, limit: int, lease: timedelta, now: datetime
) -> list[Claim]:
    """Lease up to ``limit`` due deliveries of editions that are sending.

    ``lease_token`` is new for every claim ("<worker>:<claim number>"), so a delivery taken
    back and claimed again never carries the token of its earlier holder: every later write
    is fenced by it. On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim
    side by side without waiting on, or taking, each other's rows.
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
    if is_postgres(session):
        due = due.with_for_update(skip_locked=True, of=Delivery)
    rows = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()))
        .values(
            state=DeliveryState.sending,
            lease_owner=lease_token,
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
    claims = (Claim(*row, lease_token=lease_token) for row in rows)
    return sorted(claims, key=lambda claim: claim.delivery_id)


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
    suppressed = is_suppressed(Subscriber.email)
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
    """The result of one attempt, to be written behind while its lease still holds."""

    delivery_id: int
    lease_token: str
    edition_id: int
    state: DeliveryState
    code: int | None
    reply: str
    at: datetime
    next_attempt_at: datetime | None = None
    suppress_subscriber: int | None = None


@dataclass(frozen=True)
class Recorded:
    """What writing a batch did: the deliveries whose result was dropped because their lease
    was lost, editions paused for a mass refusal (with why), editions now past their watch."""

    written: int
    dropped: tuple[int, ...] = ()
    paused: dict[int, str] = field(default_factory=dict)
    judged: frozenset[int] = frozenset()


def _still_held(session: Session, outcomes: Sequence[Outcome]) -> list[Outcome]:
    """The outcomes whose delivery is still leased under their own token. On PostgreSQL the
    rows stay locked until commit, so no reclaim can slip in between check and write."""
    ids = sorted({o.delivery_id for o in outcomes})
    query = (
        select(Delivery.id, Delivery.lease_owner)
        .where(Delivery.id.in_(ids), Delivery.state == DeliveryState.sending)
        .order_by(Delivery.id)
    )
    if is_postgres(session):
        query = query.with_for_update()
    owners = {delivery_id: owner for delivery_id, owner in session.execute(query)}
    return [o for o in outcomes if owners.get(o.delivery_id) == o.lease_token]


def _write_results(session: Session, outcomes: Sequence[Outcome]) -> int:
    """One executemany UPDATE, each row fenced by its lease token; how many rows changed."""
    if not outcomes:
        return 0
    statement = (
        update(Delivery)
        .where(
            Delivery.id == bindparam("b_id"),
            Delivery.state == DeliveryState.sending,
            Delivery.lease_owner == bindparam("b_token"),
        )
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
    result = session.connection().execute(
        statement,
        [
            {
                "b_id": o.delivery_id,
                "b_token": o.lease_token,
                "b_state": o.state.value,
                "b_code": o.code,
                "b_reply": o.reply[:1000],
                "b_sent_at": o.at if o.state == DeliveryState.sent else None,
                "b_next": o.next_attempt_at,
            }
            for o in outcomes
        ],
    )
    return row_count(result)


def record_outcomes(
    session: Session, outcomes: Sequence[Outcome], judged: Collection[int] = frozenset()
) -> Recorded:
    """Write a batch of results, each only if its lease still holds (a late result of a
    delivery that was taken back is dropped: the newer holder's word stands).

    Editions not in ``judged`` are still on watch for a mass refusal: their 5.1.x
    suppressions wait until their first results are judged (see :mod:`refusals`).
    """
    if not outcomes:
        return Recorded(0)
    outcomes = sorted(outcomes, key=lambda o: o.delivery_id)  # one lock order everywhere
    kept = _still_held(session, outcomes)
    kept_keys = {(o.delivery_id, o.lease_token) for o in kept}
    dropped = tuple(
        o.delivery_id for o in outcomes if (o.delivery_id, o.lease_token) not in kept_keys
    )
    written = _write_results(session, kept)
    now = outcomes[0].at
    batch = Counter(o.edition_id for o in kept)
    watched = {o.edition_id for o in kept if o.edition_id not in judged and _refused(o)}
    verdict = refusals.judge_first_results(session, {e: batch[e] for e in watched}, now)
    settled = {*judged, *verdict.judged}
    refusals.suppress_subscribers(
        session,
        [
            o.suppress_subscriber
            for o in kept
            if o.suppress_subscriber is not None and o.edition_id in settled
        ],
        now,
    )
    return Recorded(written, dropped, verdict.paused, frozenset(verdict.judged))


def _refused(outcome: Outcome) -> bool:
    """A permanent refusal (5xx) from the server."""
    return outcome.state == DeliveryState.failed and 500 <= (outcome.code or 0) < 600


@dataclass(frozen=True)
class Renewal:
    """Which of a worker's deliveries it still holds, and the editions among them that are
    no longer sending (paused or cancelled: their unstarted deliveries go back)."""

    held: frozenset[int]
    stopped: dict[int, EditionStatus]


def renew_leases(
    session: Session, lease_tokens: Collection[str], lease: timedelta, now: datetime
) -> Renewal:
    """Extend the leases of these claims (called for as long as their holder lives).

    Fenced by token: a delivery that was taken back and claimed again is not renewed, and
    its absence from ``held`` tells the old holder it lost it.
    """
    if not lease_tokens:
        return Renewal(frozenset(), {})
    ours = and_(
        Delivery.lease_owner.in_(sorted(lease_tokens)), Delivery.state == DeliveryState.sending
    )
    held = select(Delivery.id).where(ours).order_by(Delivery.id)
    if is_postgres(session):
        # Rows locked in id order, as result writes lock them: the two never deadlock.
        held = held.with_for_update()
    rows = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(held.scalar_subquery()), ours)
        .values(lease_expires_at=now + lease)
        .returning(Delivery.id, Delivery.edition_id)
        .execution_options(synchronize_session=False)
    ).all()
    editions = sorted({edition_id for _, edition_id in rows})
    stopped = session.execute(
        select(Edition.id, Edition.status).where(
            Edition.id.in_(editions), Edition.status != EditionStatus.sending
        )
    )
    return Renewal(frozenset(d for d, _ in rows), {e: status for e, status in stopped})


def reclaim_expired(session: Session, now: datetime, at_most_once: bool) -> int:
    """Take back deliveries whose holder stopped renewing them (it died): retried (default)
    or set aside as uncertain; those of a cancelled edition become cancelled."""
    state = DeliveryState.uncertain if at_most_once else DeliveryState.queued
    expired = (
        select(Delivery.id)
        .where(Delivery.state == DeliveryState.sending, Delivery.lease_expires_at < now)
        .order_by(Delivery.id)
    )
    if is_postgres(session):
        # Rows a slow owner is writing right now are skipped, not waited on.
        expired = expired.with_for_update(skip_locked=True)
    cancelled = exists().where(
        Edition.id == Delivery.edition_id, Edition.status == EditionStatus.cancelled
    )
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(expired.scalar_subquery()),
            # Checked again on the row itself: a renewal that landed first keeps it.
            Delivery.state == DeliveryState.sending,
            Delivery.lease_expires_at < now,
        )
        .values(
            state=case(
                (cancelled, literal(DeliveryState.cancelled.value)), else_=literal(state.value)
            ),
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=now,
            last_reply="lease expired: the worker stopped; the message may have been sent",
        )
        .execution_options(synchronize_session=False)
    )
    return row_count(result)


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
        # Its first results can no longer be judged a mass refusal: the 5.1.x suppressions
        # that waited for that are written now.
        refusals.suppress_refused(session, edition_id, now)
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
