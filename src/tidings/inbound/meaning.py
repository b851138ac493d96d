"""What a report does, once it is known whom it is about: the bounce or complaint effects of
:mod:`tidings.feedback.effects`, and the delivery's outcome. Runs on the caller's session and
never commits (the stored inbound message and its effects are one transaction)."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.db.models import Delivery, DeliveryFeedback, InboundMeaning
from tidings.feedback import effects
from tidings.feedback.effects import BounceScore, Evidence
from tidings.inbound.targets import Target
from tidings.mail.status import BounceKind

_BOUNCE_MEANING = {
    BounceKind.hard: InboundMeaning.hard_bounce,
    BounceKind.soft: InboundMeaning.soft_bounce,
    BounceKind.policy: InboundMeaning.policy,
}


@dataclass(frozen=True)
class Outcome:
    """What one message or event was taken to mean and what it changed, for its stored row."""

    meaning: InboundMeaning
    changes: str
    status: str | None = None
    diagnostic: str | None = None
    target: Target | None = None

    @property
    def recipient_domain(self) -> str | None:
        email = self.target.email if self.target else None
        return email.rpartition("@")[2].lower() if email and "@" in email else None


def bounce(
    session: Session,
    settings: Settings,
    target: Target,
    kind: BounceKind,
    evidence: Evidence,
    now: datetime,
) -> str:
    """A bounce of the target's mail: hard suppresses, soft scores a point, policy is the
    sender's (nothing for the reader). The delivery is marked bounced in every case: the
    edition's bounced count is of mail that came back, whatever the reason.

    One delivery comes back once: a soft bounce for a delivery that came back already (the
    same DSN handed in again after a lost reply or a failed IMAP move, maybe days later)
    scores no second point."""
    came_back = None
    if target.delivery_id is not None:
        came_back = session.scalar(
            select(Delivery.feedback).where(Delivery.id == target.delivery_id)
        )
        effects.mark_delivery(session, target.delivery_id, DeliveryFeedback.bounced)
    if target.email is None:
        return "nothing: the reader was erased"
    if kind == BounceKind.hard:
        return effects.hard_bounce(session, target.email, evidence, now)
    if kind == BounceKind.soft and came_back is not None:
        return f"nothing: delivery {target.delivery_id} came back already ({came_back.value})"
    if kind == BounceKind.soft:
        score = BounceScore.from_settings(settings)
        return effects.soft_bounce(session, target.email, evidence, score, now)
    domain = target.email.rpartition("@")[2]
    return f"nothing for the reader: a policy refusal by {domain}, counted for the sender"


def complaint(session: Session, target: Target, evidence: Evidence, now: datetime) -> str:
    """The reader reported the mail as spam: unsubscribed everywhere and suppressed."""
    if target.delivery_id is not None:
        effects.mark_delivery(session, target.delivery_id, DeliveryFeedback.complained)
    if target.email is None:
        return "nothing: the reader was erased"
    return effects.complaint(session, target.email, evidence, now)


def unsubscribe(session: Session, target: Target, evidence: Evidence, now: datetime) -> str:
    """The reader asked to leave the newsletter of the target's subscription."""
    if target.subscription_id is None:
        return "nothing: the reader has no subscription to that newsletter any more"
    return effects.unsubscribe(session, target.subscription_id, evidence, now)


def bounce_meaning(kind: BounceKind) -> InboundMeaning:
    return _BOUNCE_MEANING[kind]
