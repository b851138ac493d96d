"""Which delivery states are still to do, and the ledger's counts by state.

The one home of "open" and "due": what fan-out queues, claims take, reports count as
remaining and cancelling stops all follow these two tuples.
"""

from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    SQLColumnExpression,
    Subquery,
    and_,
    exists,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus

#: Not over yet: waiting, being sent under a lease, or waiting for a retry.
OPEN_STATES = (DeliveryState.queued, DeliveryState.sending, DeliveryState.deferred)
#: Waiting for a worker to claim them (once their next-attempt time has come).
DUE_STATES = (DeliveryState.queued, DeliveryState.deferred)


def in_due_state() -> ColumnElement[bool]:
    """A delivery in a due state, written as the partial index of due rows (models'
    ``DUE_ROWS``) writes it, the states spelled out: SQLite uses a partial index only for a
    query that repeats its condition, and a bound list of states does not."""
    return Delivery.state.in_([literal_column(f"'{state.value}'") for state in DUE_STATES])


def due_of(edition_id: SQLColumnExpression[int], now: datetime) -> ColumnElement[bool]:
    """The deliveries of ``edition_id`` waiting for a worker at ``now``: one range of the
    partial index of due rows (edition, next attempt), read earliest first."""
    return and_(Delivery.edition_id == edition_id, in_due_state(), Delivery.next_attempt_at <= now)


def earliest_due(edition_id: SQLColumnExpression[int], now: datetime) -> ScalarSelect[datetime]:
    """When the edition's earliest due delivery became due (NULL: none is due at ``now``):
    one probe of the index of due rows."""
    return (
        select(Delivery.next_attempt_at)
        .where(due_of(edition_id, now))
        .order_by(Delivery.next_attempt_at)
        .limit(1)
        .scalar_subquery()
    )


def waiting_editions(now: datetime) -> Subquery:
    """The sending editions with a delivery due at ``now`` (``id``), with when their
    earliest became due (``due``), that one first: the order claims serve them in, so an
    edition whose rows have waited longest goes first, however old the edition (a paced
    domain's rows go back with a later due time, so they fall behind by themselves)."""
    firsts = (
        select(Edition.id.label("id"), earliest_due(Edition.id, now).label("due"))
        .where(Edition.status == EditionStatus.sending)
        .subquery("firsts")
    )
    return (
        select(firsts.c.id, firsts.c.due)
        .where(firsts.c.due.is_not(None))
        .order_by(firsts.c.due, firsts.c.id)
        .subquery("waiting")
    )


def anything_due(now: datetime) -> ColumnElement[bool]:
    """Whether a delivery of a sending edition waits for a worker at ``now``.

    Each sending edition is asked for one due delivery of its own (a subquery per edition,
    which the planner cannot fold into a join): a paused edition's queue, or the retry tail
    of those sent, is never read. Asked of every due delivery joined to its edition, a
    paused edition of 30,000 made each answer read about 600 pages."""
    return exists().where(
        Edition.status == EditionStatus.sending, earliest_due(Edition.id, now).is_not(None)
    )


def open_of(edition_id: SQLColumnExpression[int]) -> ColumnElement[bool]:
    """Whether the edition has a delivery still to do (:data:`OPEN_STATES`).

    Asked as two probes, each of the small index that holds such rows and in that index's
    order, so neither reads the edition's final rows (what an edition being sent is mostly
    made of): its earliest due row (the index of due rows; as an EXISTS over a few editions
    PostgreSQL read the whole ledger, 409 and 523 ms beside a paused million in a
    reviewer's run), and a row being sent (the index of leased rows; ``edition_id + 0``
    keeps SQLite off the edition's own index, which it preferred)."""
    due = (
        select(Delivery.id)
        .where(Delivery.edition_id == edition_id, in_due_state())
        .order_by(Delivery.next_attempt_at)
        .limit(1)
        .scalar_subquery()
    )
    held = (
        select(Delivery.id)
        .where(
            (Delivery.edition_id + 0) == edition_id,
            Delivery.state == literal_column(f"'{DeliveryState.sending.value}'"),
        )
        .order_by(Delivery.lease_expires_at)
        .limit(1)
        .scalar_subquery()
    )
    return or_(due.is_not(None), held.is_not(None))


def has_due_work(session: Session, now: datetime) -> bool:
    """Whether anything is due now (:func:`anything_due`), or held by a lease (expired or
    not: the upkeep takes expired ones back).

    The lease question is asked of the index of leased rows, in its order: the first lease
    held by a sending edition."""
    held = (
        select(Delivery.id)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Delivery.state == DeliveryState.sending, Edition.status == EditionStatus.sending)
        .order_by(Delivery.lease_expires_at)
        .limit(1)
        .scalar_subquery()
    )
    return bool(session.scalar(select(or_(anything_due(now), held.is_not(None)))))


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
