"""Erasure: the one home of what deleting a reader clears, set-based over any set of readers.

Every path that deletes subscribers (one erasure, the console's bulk delete) goes through
:func:`erase_readers`, so none keeps what another clears. The ledger keeps anonymous rows
(``subscriber_id`` becomes NULL) so sent counts stay right; what names the address goes.
"""

from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from tidings.db.dialect import row_count
from tidings.db.models import BouncePoint, Delivery, InboundMessage, Subscriber


def erase_readers(session: Session, ids: Select[Any]) -> int:
    """Delete the subscribers ``ids`` (a SELECT of their ids) picks and clear what names
    them; how many were deleted. A query helper: five statements for any set, no commit.

    Cleared: the raw copy, recipient, diagnostic and changes of what came back about them
    (kept to their subscriber or one of their deliveries; the kind, status code and domain
    stay for the sender-health counts), their bounce points, and the relay's replies kept on
    their deliveries (which often quote the address). Subscriptions and history go with the
    subscriber (their foreign keys cascade); deliveries are detached by the database.
    The subscribers go last, so every statement before sees the same readers by their id.
    Every delivery of theirs is written (not only those with a reply), so on PostgreSQL a
    worker's result waits for this to commit and then finds the row anonymous (see
    :mod:`tidings.deliver.ledger.results`, which then stores no reply).
    """
    theirs = select(Delivery.id).where(Delivery.subscriber_id.in_(ids))
    # One statement per link, each through its own index (asked with OR, one scan of all).
    for names_them in (
        InboundMessage.subscriber_id.in_(ids),
        InboundMessage.delivery_id.in_(theirs),
    ):
        session.execute(
            update(InboundMessage)
            .where(names_them)
            .values(raw=None, recipient=None, diagnostic=None, changes=None)
            .execution_options(synchronize_session=False)
        )
    session.execute(
        delete(BouncePoint)
        .where(BouncePoint.email.in_(select(Subscriber.email).where(Subscriber.id.in_(ids))))
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id.in_(ids))
        .values(last_reply=None)
        .execution_options(synchronize_session=False)
    )
    return row_count(
        session.execute(
            delete(Subscriber)
            .where(Subscriber.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    )
