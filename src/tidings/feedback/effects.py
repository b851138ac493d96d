"""What a bounce, a complaint or an unsubscribe does to a reader: one home for each rule,
used alike by the send-time verdicts (``deliver``) and by what comes back later (``inbound``).

- hard bounce (the recipient is gone): the address is suppressed at once;
- soft bounce: a point on the address's bounce score, at most one a day; enough points within
  the window suppress it (after Mailman 3's defaults: 5 points, 14 days);
- complaint: unsubscribed from every newsletter, and suppressed;
- unsubscribe (the List-Unsubscribe mailto): that one subscription ends.

Policy refusals (5.7.x, blocklists) are the sender's health, never the reader's: nothing here.

These run on the caller's session and never commit. Each writes the subscriber's history
(:mod:`.history`) with its evidence, and answers with a short sentence of what it changed
("suppressed a@example.org (hard bounce)", "nothing: ..."), which inbound keeps beside the
message.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.db import clauses
from tidings.db.dialect import PRESERVE_ROWCOUNT, row_count, upsert_insert
from tidings.db.models import (
    BouncePoint,
    Delivery,
    DeliveryFeedback,
    HistoryKind,
    Newsletter,
    Subscriber,
    Subscription,
    Suppression,
    SuppressionReason,
)
from tidings.errors import InvalidAddress
from tidings.feedback.history import DETAIL_LIMIT, point_day, record, suppressed_detail
from tidings.mail.addresses import normalise_email


@dataclass(frozen=True)
class Evidence:
    """Why a change is made: the diagnostic line (or the complaint's feedback type, or who
    asked), and the inbound message or provider event it came in, if any."""

    detail: str
    inbound_id: int | None = None


@dataclass(frozen=True)
class BounceScore:
    """The bounce score's rule: suppressed at ``threshold`` points, each point counting for
    ``window_days`` days (the day it was given and the ones after it)."""

    threshold: int
    window_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "BounceScore":
        return cls(settings.bounce_score_threshold, settings.bounce_score_window_days)


def hard_bounce(session: Session, email: str, evidence: Evidence, now: datetime) -> str:
    """The recipient is gone: the address is suppressed at once (reason ``hard_bounce``)."""
    address = _address(email)
    if address is None:
        return f"nothing: {email!r} is not a valid address"
    if suppress(session, address, SuppressionReason.hard_bounce, evidence, now):
        return f"suppressed {address} (hard bounce)"
    return _already_suppressed(session, address)


def soft_bounce(
    session: Session, email: str, evidence: Evidence, score: BounceScore, now: datetime
) -> str:
    """A point on the address's bounce score: at most one a day (a second bounce the same
    day changes nothing); points older than the window are forgotten; at the threshold the
    address is suppressed (reason ``soft_bounce``)."""
    address = _address(email)
    if address is None:
        return f"nothing: {email!r} is not a valid address"
    if _suppression_reason(session, address) is not None:
        return _already_suppressed(session, address)
    today = point_day(now)
    oldest = today - timedelta(days=score.window_days - 1)
    session.execute(
        delete(BouncePoint).where(BouncePoint.email == address, BouncePoint.day < oldest)
    )
    added = row_count(
        session.execute(
            upsert_insert(session)(BouncePoint)
            .values(email=address, day=today, detail=_cut(evidence.detail), created_at=now)
            .on_conflict_do_nothing(index_elements=["email", "day"]),
            execution_options=PRESERVE_ROWCOUNT,
        )
    )
    points = int(
        session.scalar(
            select(func.count()).where(BouncePoint.email == address, BouncePoint.day >= oldest)
        )
        or 0
    )
    if not added:
        return (
            f"nothing: {address} has a bounce point for {today.isoformat()} already "
            f"({points} of {score.threshold})"
        )
    for subscriber_id in _subscribers(session, address):
        record(
            session,
            subscriber_id,
            HistoryKind.bounce_point,
            evidence.detail,
            now,
            inbound_id=evidence.inbound_id,
        )
    said = f"bounce point {points} of {score.threshold} for {address}"
    if points >= score.threshold:
        why = f"{points} soft bounces within {score.window_days} days; the last: "
        last = Evidence(why + evidence.detail, evidence.inbound_id)
        suppress(session, address, SuppressionReason.soft_bounce, last, now)
        said += ": suppressed (soft bounces)"
    return said


def complaint(session: Session, email: str, evidence: Evidence, now: datetime) -> str:
    """The reader marked a mail as spam: unsubscribed from every newsletter, and the address
    suppressed (reason ``complaint``), so no mail of any kind reaches them again."""
    address = _address(email)
    if address is None:
        return f"nothing: {email!r} is not a valid address"
    which = Subscription.subscriber_id.in_(_subscribers(session, address))
    ended = _leave(session, evidence, now, which)
    said = []
    if ended:
        said.append(f"unsubscribed {address} from {', '.join(sorted(ended))}")
    if suppress(session, address, SuppressionReason.complaint, evidence, now):
        said.append(f"suppressed {address} (complaint)")
    return "; ".join(said) or _already_suppressed(session, address)


def unsubscribe(session: Session, subscription_id: int, evidence: Evidence, now: datetime) -> str:
    """The reader asked (a mail to the subscription's List-Unsubscribe address): that one
    subscription ends at once; the reader's other newsletters go on."""
    ended = _leave(session, evidence, now, Subscription.id == subscription_id)
    found = session.execute(
        select(Subscriber.email, Newsletter.slug)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .join(Newsletter, Newsletter.id == Subscription.newsletter_id)
        .where(Subscription.id == subscription_id)
    ).first()
    if found is None:
        return f"nothing: subscription {subscription_id} no longer exists"
    email, slug = found
    if not ended:
        return f"nothing: {email} was unsubscribed from {slug} already"
    return f"unsubscribed {email} from {slug}"


def mark_delivery(session: Session, delivery_id: int, feedback: DeliveryFeedback) -> None:
    """Note on the delivery what came back about it after the relay took it (the edition's
    bounced and complained counts). A complaint outweighs a bounce: never the other way."""
    which = [Delivery.id == delivery_id]
    if feedback == DeliveryFeedback.bounced:
        which.append(Delivery.feedback.is_(None))
    session.execute(
        update(Delivery)
        .where(*which)
        .values(feedback=feedback)
        .execution_options(synchronize_session=False)
    )


def suppress(
    session: Session,
    email: str,
    reason: SuppressionReason,
    evidence: Evidence,
    now: datetime,
) -> bool:
    """Put a (normalised) address on the suppression list for what came back, with a
    ``suppressed`` event in the history of its subscriber; False if it was listed already
    (for whatever reason: the first one stands)."""
    added = row_count(
        session.execute(
            upsert_insert(session)(Suppression)
            .values(email=email, reason=reason, detail=_cut(evidence.detail), created_at=now)
            .on_conflict_do_nothing(index_elements=["email"]),
            execution_options=PRESERVE_ROWCOUNT,
        )
    )
    if added:
        for subscriber_id in _subscribers(session, email):
            record(
                session,
                subscriber_id,
                HistoryKind.suppressed,
                suppressed_detail(reason, evidence.detail),
                now,
                inbound_id=evidence.inbound_id,
            )
    return bool(added)


def _leave(
    session: Session, evidence: Evidence, now: datetime, which: ColumnElement[bool]
) -> list[str]:
    """Unsubscribe the subscriptions matching ``which`` that are still subscribed (active or
    pending), each with an ``unsubscribed`` event in its subscriber's history; the slugs of
    the newsletters left."""
    ended = session.execute(
        clauses.leave(now, which).returning(Subscription.subscriber_id, Subscription.newsletter_id)
    ).all()
    if not ended:
        return []
    slugs = dict(
        session.execute(
            select(Newsletter.id, Newsletter.slug).where(
                Newsletter.id.in_({newsletter_id for _, newsletter_id in ended})
            )
        ).all()
    )
    for subscriber_id, newsletter_id in sorted((s, n) for s, n in ended):
        record(
            session,
            subscriber_id,
            HistoryKind.unsubscribed,
            evidence.detail,
            now,
            newsletter_id=newsletter_id,
            inbound_id=evidence.inbound_id,
        )
    return [slugs[newsletter_id] for _, newsletter_id in ended]


def _subscribers(session: Session, email: str) -> list[int]:
    """The subscriber ids of an address (one at most: addresses are unique)."""
    return list(session.scalars(select(Subscriber.id).where(Subscriber.email == email)))


def _suppression_reason(session: Session, email: str) -> SuppressionReason | None:
    reason: SuppressionReason | None = session.scalar(
        select(Suppression.reason).where(Suppression.email == email)
    )
    return reason


def _already_suppressed(session: Session, email: str) -> str:
    reason = _suppression_reason(session, email)
    why = f" ({reason.value})" if reason is not None else ""
    return f"nothing: {email} is already suppressed{why}"


def _address(email: str) -> str | None:
    try:
        return normalise_email(email)
    except InvalidAddress:
        return None


def _cut(detail: str) -> str:
    return detail[:DETAIL_LIMIT]
