"""Claims: due deliveries leased to a worker under a token of their own, the leases renewed
for as long as their holder lives, and who each claimed delivery goes to."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, func, select, true, update
from sqlalchemy.orm import Session

from tidings.db.clauses import is_suppressed
from tidings.db.dialect import is_postgres
from tidings.db.models import (
    Delivery,
    DeliveryState,
    Edition,
    EditionStatus,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tidings.deliver.dbclock import db_time
from tidings.deliver.ledger.results import Outcome
from tidings.deliver.ledger.states import due_of, waiting_editions
from tidings.mail.status import BounceKind


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
    #: The edition's variant this reader gets (None: the edition's own parts).
    variant_id: int | None = None

    def outcome(
        self,
        state: DeliveryState,
        code: int | None,
        reply: str,
        at: datetime,
        next_attempt_at: datetime | None = None,
        bounce: BounceKind | None = None,
        *,
        counted: bool = True,
    ) -> "Outcome":
        """The result of this attempt, fenced by this claim's lease token; ``bounce``: the
        kind of refusal it was, for its reader's suppression or bounce score; ``counted``:
        False when the job was handed back unsent by the sending limits (no attempt)."""
        return Outcome(
            self.delivery_id,
            self.lease_token,
            self.edition_id,
            state,
            code,
            reply,
            at,
            next_attempt_at,
            bounce if self.subscriber_id is not None else None,
            counted,
        )


def claim_due(
    session: Session,
    lease_token: str,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
) -> list[Claim]:
    """Lease up to ``limit`` due deliveries of editions that are sending, until ``now`` +
    ``lease``; ``now`` is the database's time unless given (tests, or a caller that read it
    in this transaction): every host judges leases by that one clock.

    ``lease_token`` is new for every claim ("<worker>:<claim number>"), so a delivery taken
    back and claimed again never carries the token of its earlier holder: every later write
    is fenced by it. On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim
    side by side without waiting on, or taking, each other's rows.
    """
    now = db_time(session, now)
    rows = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(_due_ids(session, now, limit).scalar_subquery()))
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
            Delivery.variant_id,
        )
        .execution_options(synchronize_session=False)
    )
    claims = (Claim(*row[:-1], lease_token=lease_token, variant_id=row[-1]) for row in rows)
    return sorted(claims, key=lambda claim: claim.delivery_id)


def _due_ids(session: Session, now: datetime, limit: int) -> Select[int]:
    """Up to ``limit`` due deliveries of the sending editions, the edition whose earliest
    due row has waited longest first (:func:`~.states.waiting_editions`), each edition's
    earliest first, through the partial index of due rows (edition, next attempt): a paused
    edition's queue is never read. Joined to their editions instead, the planner read the
    whole ledger when a paused edition's rows came first (270 ms a claim beside a paused
    million).

    On PostgreSQL each edition's rows are a LATERAL subquery locked ``FOR UPDATE SKIP
    LOCKED``, so concurrent claimers pass each other's rows. SQLite (one writer, no
    LATERAL) takes the earliest due rows of all sending editions together, through the same
    index: the same rows first, without filling a claim from one edition at a time.
    """
    if not is_postgres(session):
        return (
            select(Delivery.id)
            .select_from(Edition)
            .join(Delivery, due_of(Edition.id, now))
            .where(Edition.status == EditionStatus.sending)
            .order_by(Delivery.next_attempt_at)
            .limit(limit)
        )
    waiting = waiting_editions(now)
    of_edition = (
        select(Delivery.id)
        .where(due_of(waiting.c.id, now))
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .lateral()
    )
    return select(of_edition.c.id).select_from(waiting).join(of_edition, true()).limit(limit)


@dataclass(frozen=True)
class Recipient:
    """Who a claimed delivery goes to, if they may still be mailed."""

    subscriber_id: int
    subscription_id: int
    email: str
    name: str | None
    #: When they signed up (their consent, else confirmation, else the subscription's row).
    signed_up_at: datetime | None = None


def recipients(
    session: Session, newsletter_id: int, subscriber_ids: Sequence[int]
) -> dict[int, Recipient]:
    """The subscribers among ``subscriber_ids`` who are still active and not suppressed."""
    suppressed = is_suppressed(Subscriber.email)
    rows = session.execute(
        select(
            Subscriber.id,
            Subscription.id,
            Subscriber.email,
            Subscriber.name,
            func.coalesce(
                Subscription.consent_at, Subscription.confirmed_at, Subscription.created_at
            ),
        )
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
class Renewal:
    """Which of a worker's deliveries it still holds, and the editions among them that are
    no longer sending (paused or cancelled: their unstarted deliveries go back)."""

    held: frozenset[int]
    stopped: dict[int, EditionStatus]


def renew_leases(
    session: Session,
    lease_tokens: Collection[str],
    lease: timedelta,
    now: datetime | None = None,
) -> Renewal:
    """Extend the leases of these claims to ``now`` + ``lease`` (called for as long as their
    holder lives); ``now`` is the database's time unless given (tests).

    Fenced by token: a delivery that was taken back and claimed again is not renewed, and
    its absence from ``held`` tells the old holder it lost it.
    """
    if not lease_tokens:
        return Renewal(frozenset(), {})
    now = db_time(session, now)
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
