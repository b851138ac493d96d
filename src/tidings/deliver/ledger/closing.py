"""Closing up: deliveries whose holder died taken back, an edition's unsent deliveries
cancelled, and editions with nothing left to send closed with their final counts."""

from datetime import datetime

from sqlalchemy import case, exists, literal, select, update
from sqlalchemy.orm import Session

from tidings.db.dialect import is_postgres, row_count
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus
from tidings.deliver import refusals
from tidings.deliver.dbclock import db_time
from tidings.deliver.ledger.results import DEFAULT_SCORE
from tidings.deliver.ledger.sent import close_sent, nothing_open
from tidings.deliver.ledger.states import in_due_state, state_counts
from tidings.feedback.effects import BounceScore


def reclaim_expired(session: Session, now: datetime | None, at_most_once: bool) -> int:
    """Take back deliveries whose holder stopped renewing them (it died): retried (default)
    or set aside as uncertain; those of a cancelled edition become cancelled.

    Expired means before ``now``: the database's time when None, as every lease was written
    (a test gives a time to see leases run out). Never a host's own clock: one minutes ahead
    would take back live leases, and their messages would be sent twice.
    """
    now = db_time(session, now)
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


def cancel_unsent(session: Session, edition_id: int, reply: str) -> int:
    """The edition's deliveries still waiting for a worker become ``cancelled`` (kept in the
    ledger, with ``reply``); how many. Those being sent finish, or are cancelled when their
    worker next renews its leases."""
    cancelled = session.execute(
        update(Delivery)
        .where(Delivery.edition_id == edition_id, in_due_state())
        .values(state=DeliveryState.cancelled, last_reply=reply)
        .execution_options(synchronize_session=False)
    )
    return row_count(cancelled)


def finish_editions(session: Session, now: datetime, score: BounceScore = DEFAULT_SCORE) -> int:
    """Mark editions underway (sending, or paused: rows left by older code) with no open
    deliveries as sent; how many. The result writer closes them as their last result lands
    (:func:`~.sent.close_sent`): this catches what is left.

    Each edition that is over (sent, or cancelled with nothing in flight) gets its counts per
    state stored once, so reports never count its deliveries again (what comes back later,
    bounces and complaints, is counted live: see :func:`~.states.feedback_counts`).
    """
    finished = close_sent(session, now)
    settled = session.scalars(
        select(Edition.id).where(
            Edition.status.in_((EditionStatus.sent, EditionStatus.cancelled)),
            Edition.final_counts.is_(None),
            nothing_open(),
        )
    ).all()
    for edition_id in sorted({*finished, *settled}):
        # Its first results can no longer be judged a mass refusal: the suppressions and
        # bounce points that waited for that are written now (with the bounce ``score``).
        refusals.settle_refused(session, edition_id, score, now)
        counts = {state.value: n for state, n in state_counts(session, edition_id).items()}
        session.execute(
            update(Edition)
            .where(Edition.id == edition_id)
            .values(final_counts=counts)
            .execution_options(synchronize_session=False)
        )
    return len(finished)
