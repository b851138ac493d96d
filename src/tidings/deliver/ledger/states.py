"""Which delivery states are still to do, and the ledger's counts by state.

The one home of "open" and "due": what fan-out queues, claims take, reports count as
remaining and cancelling stops all follow these two tuples.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import QueryableAttribute, Session

from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus

#: Not over yet: waiting, being sent under a lease, or waiting for a retry.
OPEN_STATES = (DeliveryState.queued, DeliveryState.sending, DeliveryState.deferred)
#: Waiting for a worker to claim them (once their next-attempt time has come).
DUE_STATES = (DeliveryState.queued, DeliveryState.deferred)


def has_due_work(session: Session, now: datetime) -> bool:
    """Whether anything is due now, or held by a lease (expired or not: the upkeep takes
    expired ones back).

    Each question is asked of its own index, in that index's order (the earliest due of each
    due state, the first lease held): asked with OR, or as an EXISTS the planner expects to
    satisfy soon, a retry tail (deferred rows due later) made it read every delivery ever
    made, every few seconds per worker. A paused edition's due backlog is still walked (the
    edition's status is checked per row), as it was before."""
    sending = Edition.status == EditionStatus.sending

    def first(rule: ColumnElement[bool], order: QueryableAttribute[Any]) -> ColumnElement[bool]:
        found = (
            select(Delivery.id)
            .join(Edition, Edition.id == Delivery.edition_id)
            .where(rule, sending)
            .order_by(order)
            .limit(1)
            .scalar_subquery()
        )
        return found.is_not(None)

    due = [
        first(
            and_(Delivery.state == state, Delivery.next_attempt_at <= now), Delivery.next_attempt_at
        )
        for state in DUE_STATES
    ]
    held = first(Delivery.state == DeliveryState.sending, Delivery.lease_expires_at)
    return bool(session.scalar(select(or_(*due, held))))


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
