"""A reader's status in a newsletter, and subscriptions counted per newsletter and status:
the one rule and the one count behind every overview (the newsletter list, the
dashboard), the console's subscriber list and the export.

It lives in catalog/, below audience/, because catalog's own newsletter list needs it and a
room never imports a room above it; it only reads the subscriptions and suppressions.
"""

import enum
from collections import Counter
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from tidings.db.clauses import is_suppressed
from tidings.db.models import (
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)


class ReaderStatus(enum.StrEnum):
    """What a subscription amounts to: its own status, unless the address is suppressed,
    which outranks it (nothing is sent to a suppressed address, whatever it signed up to)."""

    active = "active"
    pending = "pending"
    unsubscribed = "unsubscribed"
    #: Suppressed because mail to it bounced (hard, or soft too often).
    bounced = "bounced"
    #: Suppressed for another reason: a complaint, an erasure, by hand.
    suppressed = "suppressed"


#: The suppression reasons that show as ``bounced``.
BOUNCES = (SuppressionReason.hard_bounce.value, SuppressionReason.soft_bounce.value)


def reader_status(
    status: ColumnElement[Any] | InstrumentedAttribute[Any] = Subscription.status,
    email: ColumnElement[str] | InstrumentedAttribute[str] = Subscriber.email,
) -> ColumnElement[str]:
    """The :class:`ReaderStatus` of a subscription as SQL, from its ``status`` column and its
    subscriber's ``email`` (by default those of a query joining ``Subscription`` and
    ``Subscriber``); suppression is :func:`clauses.is_suppressed`."""
    reason = (
        select(Suppression.reason)
        .where(Suppression.email == email)
        .limit(1)
        .correlate_except(Suppression)
        .scalar_subquery()
    )
    # Correlated by hand: inside another subquery (the audience filter's EXISTS), automatic
    # correlation would stop one level short and list subscribers again.
    suppressed = is_suppressed(email).correlate_except(Suppression)
    return case(
        (
            suppressed,
            case(
                (reason.in_(BOUNCES), ReaderStatus.bounced.value),
                else_=ReaderStatus.suppressed.value,
            ),
        ),
        else_=status,
    )


def subscription_counts(session: Session) -> dict[tuple[int, str], int]:
    """How many subscriptions each newsletter has in each :class:`ReaderStatus`, keyed by
    ``(newsletter_id, status)`` (a ReaderStatus, which a SubscriptionStatus of the same name
    also finds); a pair with none is absent. A suppressed address counts as
    bounced or suppressed, never as active, pending or unsubscribed.

    Two grouped reads, not :func:`reader_status` per row (at 450,000 subscriptions that was
    a look-up per row, 1.1 s): every subscription by its own status, then the few of the
    suppressed addresses moved from their own status to the one :func:`status_of` gives.
    """
    counts: Counter[tuple[int, str]] = Counter()
    for newsletter_id, status, total in session.execute(
        select(Subscription.newsletter_id, Subscription.status, func.count()).group_by(
            Subscription.newsletter_id, Subscription.status
        )
    ):
        counts[(newsletter_id, ReaderStatus(status.value))] += total
    for newsletter_id, status, reason, total in _suppressed_subscriptions(session):
        counts[(newsletter_id, ReaderStatus(status.value))] -= total
        counts[(newsletter_id, status_of(status, reason))] += total
    return {key: total for key, total in counts.items() if total}


def _suppressed_subscriptions(
    session: Session,
) -> list[tuple[int, SubscriptionStatus, SuppressionReason, int]]:
    """The subscriptions of suppressed addresses, counted per newsletter, own status and
    suppression reason: read from the suppression list out (each address found by its
    unique index, its subscriptions by theirs), so it costs what the list holds."""
    rows = session.execute(
        select(Subscription.newsletter_id, Subscription.status, Suppression.reason, func.count())
        .select_from(Suppression)
        .join(Subscriber, Subscriber.email == Suppression.email)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .group_by(Subscription.newsletter_id, Subscription.status, Suppression.reason)
    )
    return [(newsletter_id, status, reason, total) for newsletter_id, status, reason, total in rows]


def status_of(status: SubscriptionStatus, suppression: SuppressionReason | None) -> ReaderStatus:
    """:func:`reader_status` for one subscription already in hand (the detail page)."""
    if suppression is None:
        return ReaderStatus(status.value)
    if suppression.value in BOUNCES:
        return ReaderStatus.bounced
    return ReaderStatus.suppressed
