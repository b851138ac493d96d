"""The sender's health per receiving domain: how often a domain refused our mail for policy or
reputation (5.7.x, blocklists) at send time, and how many such bounces came back later,
beside how much mail it accepted. A policy refusal is the *sender's* problem (a listed IP, a
missing DKIM or DMARC alignment), never the reader's, so it is watched per domain here.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, InboundMeaning, InboundMessage, Subscriber
from tidings.db.types import utcnow
from tidings.errors import InvalidInput
from tidings.mail.status import BounceKind, classify
from tidings.reports.feedback import InboundSeen, recent_inbound

DAYS_MAX = 90
#: The panel lists this many domains at most, the worst first.
DOMAINS_MAX = 100
#: Distinct (domain, reply) groups read to find the policy refusals: they are classified in
#: Python (the one classifier is Python); beyond this many the figures say they are partial.
REPLY_GROUPS_MAX = 5000
#: Where a policy bounce that names no reader is counted.
UNKNOWN_DOMAIN = "(unknown)"


#: Counts per domain, each domain's commonest line, and whether the groups were cut short.
Figures = tuple[Counter[str], dict[str, str], bool]


@dataclass(frozen=True)
class DomainHealth:
    """One receiving domain over the window."""

    domain: str
    #: Deliveries the relay accepted for it.
    sent: int
    #: Deliveries it refused at send time for policy (a 5xx reply the classifier calls policy).
    refused: int
    #: Policy bounces that came back from it after the relay accepted the mail.
    bounced: int
    #: The commonest policy reply or diagnostic line it gave: what to look into.
    example: str | None

    @property
    def problems(self) -> int:
        return self.refused + self.bounced

    @property
    def rate_percent(self) -> float | None:
        """Policy refusals and bounces per message offered to the domain, in percent."""
        offered = self.sent + self.refused
        return round(100 * self.problems / offered, 1) if offered else None


@dataclass(frozen=True)
class SenderHealth:
    days: int
    since: datetime
    #: Domains with a policy refusal or bounce in the window, the most first.
    domains: list[DomainHealth]
    sent: int
    refused: int
    bounced: int
    #: The newest inbound messages of any meaning (what the inbound path has been seeing).
    recent: list[InboundSeen] = field(default_factory=list)
    #: True when more domains or reply groups existed than were read.
    partial: bool = False


def _domain_of(email: InstrumentedAttribute[str]) -> ColumnElement[str]:
    """The part after the last ``@``, lower case, in SQL both databases speak: ``rtrim``
    strips every trailing character that is not an ``@``, leaving the local part and its
    ``@``, which ``replace`` then removes (a domain holds no ``@``)."""
    local_and_at = func.rtrim(email, func.replace(email, "@", ""))
    return func.lower(func.replace(email, local_and_at, ""))


def _policy_refusals(session: Session, since: datetime) -> Figures:
    """Policy refusals at send time per domain, each domain's commonest such reply, and
    whether the reply groups were cut at ``REPLY_GROUPS_MAX``."""
    domain = _domain_of(Subscriber.email)
    rows = session.execute(
        select(domain, Delivery.last_reply_code, Delivery.last_reply, func.count())
        .select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(
            Delivery.last_attempt_at >= since,
            Delivery.last_reply_code >= 500,
            Delivery.last_reply_code < 600,
        )
        .group_by(domain, Delivery.last_reply_code, Delivery.last_reply)
        .order_by(func.count().desc())
        .limit(REPLY_GROUPS_MAX + 1)
    ).all()
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for name, code, reply, n in rows[:REPLY_GROUPS_MAX]:
        if classify(code, None, reply or "") != BounceKind.policy:
            continue
        counts[name] += n
        examples.setdefault(name, f"{code} {reply}" if reply else str(code))
    return counts, examples, len(rows) > REPLY_GROUPS_MAX


def _policy_bounces(session: Session, since: datetime) -> Figures:
    """Policy bounces that came back per domain, and each domain's commonest diagnostic."""
    rows = session.execute(
        select(InboundMessage.recipient_domain, InboundMessage.diagnostic, func.count())
        .where(
            InboundMessage.meaning == InboundMeaning.policy,
            InboundMessage.received_at >= since,
        )
        .group_by(InboundMessage.recipient_domain, InboundMessage.diagnostic)
        .order_by(func.count().desc())
        .limit(REPLY_GROUPS_MAX + 1)
    ).all()
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for name, diagnostic, n in rows[:REPLY_GROUPS_MAX]:
        counts[name or UNKNOWN_DOMAIN] += n
        if diagnostic:
            examples.setdefault(name or UNKNOWN_DOMAIN, diagnostic)
    return counts, examples, len(rows) > REPLY_GROUPS_MAX


def _sent(session: Session, since: datetime, domains: list[str]) -> tuple[dict[str, int], int]:
    """Deliveries accepted since ``since``: per domain of ``domains``, and in all."""
    accepted = (Delivery.state == DeliveryState.sent, Delivery.sent_at >= since)
    total = session.scalar(select(func.count()).select_from(Delivery).where(*accepted)) or 0
    if not domains:
        return {}, total
    domain = _domain_of(Subscriber.email)
    per_domain = session.execute(
        select(domain, func.count())
        .select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(*accepted, domain.in_(domains))
        .group_by(domain)
    ).all()
    return {name: n for name, n in per_domain}, total


def sender_health(db: Database, days: int = 7, recent: int = 20) -> SenderHealth:
    """The figures of the last ``days`` days (1 to ``DAYS_MAX``): a handful of grouped
    queries, whatever the number of deliveries; and the ``recent`` newest inbound messages."""
    if not 1 <= days <= DAYS_MAX:
        raise InvalidInput(f"days must be between 1 and {DAYS_MAX}")
    since = utcnow() - timedelta(days=days)
    with db.session() as session:
        refused, refusal_examples, cut_refusals = _policy_refusals(session, since)
        bounced, bounce_examples, cut_bounces = _policy_bounces(session, since)
        problems = refused + bounced
        worst = sorted(problems, key=lambda name: (-problems[name], name))
        shown = worst[:DOMAINS_MAX]
        sent, sent_total = _sent(session, since, [d for d in shown if d != UNKNOWN_DOMAIN])
    domains = [
        DomainHealth(
            domain=name,
            sent=sent.get(name, 0),
            refused=refused[name],
            bounced=bounced[name],
            example=refusal_examples.get(name) or bounce_examples.get(name),
        )
        for name in shown
    ]
    return SenderHealth(
        days=days,
        since=since,
        domains=domains,
        sent=sent_total,
        refused=refused.total(),
        bounced=bounced.total(),
        recent=recent_inbound(db, recent),
        partial=cut_refusals or cut_bounces or len(worst) > DOMAINS_MAX,
    )
