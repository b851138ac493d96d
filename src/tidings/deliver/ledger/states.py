"""Which delivery states are still to do, and the ledger's counts by state.

The one home of "open" and "due": what fan-out queues, claims take, reports count as
remaining and cancelling stops all follow these two tuples.
"""

from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus

#: Not over yet: waiting, being sent under a lease, or waiting for a retry.
OPEN_STATES = (DeliveryState.queued, DeliveryState.sending, DeliveryState.deferred)
#: Waiting for a worker to claim them (once their next-attempt time has come).
DUE_STATES = (DeliveryState.queued, DeliveryState.deferred)


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
