"""The one inbound service: every way in (a pipe, the SMTP/LMTP listener, IMAP, a provider's
webhook) hands its message or event here, to be read, applied once and kept.

The envelope recipient decides whom a message is about, never its content: ``b-`` names a
delivery, ``u-`` a subscription's List-Unsubscribe address, ``n-`` the subscription a notice
(confirmation mail) went to. The mac protects them: a forged or altered address names nobody
and changes nothing. The address must be on TIDINGS_BOUNCE_DOMAIN when that is set; without
it any domain is taken (each newsletter's bounces then come to its own From domain), which
costs nothing, as only the mac says whom an address names.

Each message or event is stored once, in the same transaction as what it changed (an error
rolls both back, and the caller tries again). A database that cannot be reached is raised as
it is (:func:`tidings.db.errors.is_transient` says so), for the caller to map (exit 75, SMTP
451, HTTP 503).
"""

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.db.dialect import PRESERVE_ROWCOUNT, row_count, upsert_insert
from tidings.db.engine import Database
from tidings.db.models import InboundMeaning, InboundMessage
from tidings.db.types import utcnow
from tidings.deliver.retry import retry_transient
from tidings.feedback.effects import Evidence
from tidings.inbound import meaning
from tidings.inbound.events import Handled, ProviderEvent
from tidings.inbound.meaning import Outcome
from tidings.inbound.parse import Kind, Parsed, asks_to_leave, parse_message
from tidings.inbound.targets import (
    Target,
    looks_signed,
    of_email,
    of_message_id,
    of_returned,
    of_tag,
    read_signed,
)
from tidings.mail.returnpath import Role, expected_domain
from tidings.mail.status import classify
from tidings.metrics import FEEDBACK

#: Rows deleted per statement by :func:`purge_old`.
PURGE_BATCH = 5000


def handle_message(
    db: Database,
    settings: Settings,
    raw: bytes,
    recipient: str | None,
    channel: str,
    now: datetime | None = None,
) -> Handled:
    """Read one inbound message, apply what it means, and keep it. ``recipient`` is the
    envelope recipient; None: the first signed Delivered-To or To address (else the first)."""
    now = now or utcnow()
    oversized = len(raw) > settings.inbound_max_bytes
    parsed = parse_message(b"") if oversized else parse_message(raw)
    recipient = (recipient or _recipient_of(settings, parsed) or "").strip()[:320] or None

    def transaction() -> Handled:
        with db.session() as session:
            row = _stored(session, settings, raw, channel, recipient, now)
            if oversized:  # the caller read no more than the limit and a byte: not all of it
                row.truncated = True
                limit = settings.inbound_max_bytes
                outcome = Outcome(InboundMeaning.ignored, f"nothing: over the {limit}-byte limit")
            else:
                outcome = _message_outcome(session, settings, parsed, recipient, row.id, now)
            return _finish(session, row, outcome)

    return _counted(retry_transient(transaction))


def handle_event(
    db: Database, settings: Settings, event: ProviderEvent, now: datetime | None = None
) -> Handled:
    """Apply one verified provider event once: a replay (same provider and event id) finds its
    row stored already and changes nothing (``Handled.new`` is False)."""
    now = now or utcnow()

    def transaction() -> Handled:
        with db.session() as session:
            # Claim the (provider, event id) first: of two deliveries of one event at the
            # same moment, the second waits here for the first and then finds it.
            claimed = row_count(
                session.execute(
                    upsert_insert(session)(InboundMessage)
                    .values(_columns(settings, event.raw, "webhook", event.email, now))
                    .values(provider=event.provider, event_id=event.event_id)
                    .on_conflict_do_nothing(index_elements=["provider", "event_id"]),
                    execution_options=PRESERVE_ROWCOUNT,
                )
            )
            row = session.scalars(
                select(InboundMessage).where(
                    InboundMessage.provider == event.provider,
                    InboundMessage.event_id == event.event_id,
                )
            ).one()
            if not claimed:  # nothing written: the session ends without a commit
                said = f"nothing: {event.provider} event {event.event_id} was handled already"
                return Handled(None, row.meaning, said, new=False)
            return _finish(session, row, _event_outcome(session, settings, event, row.id, now))

    return _counted(retry_transient(transaction))


#: The meanings counted as mail that came back, by kind, in :data:`tidings.metrics.FEEDBACK`.
FEEDBACK_KINDS = (
    InboundMeaning.hard_bounce,
    InboundMeaning.soft_bounce,
    InboundMeaning.policy,
    InboundMeaning.complaint,
)
for _kind in FEEDBACK_KINDS:
    FEEDBACK.labels(_kind.value)  # every series exists from the start, at 0


def _counted(handled: Handled) -> Handled:
    """``handled``, counted once it is committed: a bounce or complaint by its kind (a
    replayed provider event is not counted again)."""
    if handled.new and handled.meaning in FEEDBACK_KINDS:
        FEEDBACK.labels(handled.meaning.value).inc()
    return handled


def purge_old(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """Delete the inbound messages older than the retention period (in batches); how many.
    The changes they made stay in the subscribers' history (its link to them is cleared)."""
    cutoff = (now or utcnow()) - timedelta(days=settings.inbound_retention_days)
    deleted = 0
    while True:
        with db.session() as session:
            batch = select(InboundMessage.id).where(InboundMessage.received_at < cutoff)
            ids = list(session.scalars(batch.limit(PURGE_BATCH)))
            if ids:
                session.execute(delete(InboundMessage).where(InboundMessage.id.in_(ids)))
                session.commit()
        deleted += len(ids)
        if len(ids) < PURGE_BATCH:
            return deleted


def _message_outcome(
    session: Session,
    settings: Settings,
    parsed: Parsed,
    recipient: str | None,
    inbound_id: int,
    now: datetime,
) -> Outcome:
    domain = expected_domain(settings.bounce_domain)
    tagged = read_signed(settings.secret, domain, recipient)
    target = of_tag(session, tagged, "the envelope recipient") if tagged else None
    # A mail client's unsubscribe button may mark its mail Auto-Submitted; nothing but a
    # List-Unsubscribe mailto leads to a u- address, so its subject asking is a request.
    asked = (
        tagged is not None
        and tagged.role == Role.unsubscribe
        and asks_to_leave(parsed.head.subject)
    )
    if parsed.kind == Kind.auto_reply and not asked:
        return Outcome(InboundMeaning.auto_reply, f"nothing: {parsed.reason}", target=target)
    if looks_signed(recipient) and tagged is None:
        said = f"nothing: {recipient} does not verify (forged, altered or another key's)"
        return Outcome(InboundMeaning.ignored, said)
    if tagged is not None and target is None:
        return Outcome(InboundMeaning.ignored, f"nothing: {recipient} names nobody any more")
    if parsed.kind == Kind.arf:
        if target is None:
            target = of_returned(session, settings.secret, domain, parsed)
        return _complaint(session, parsed, target, inbound_id, now)
    if parsed.kind == Kind.dsn:
        if target is None or (tagged and tagged.role == Role.unsubscribe):
            said = "nothing: a bounce that names none of our deliveries"
            return Outcome(InboundMeaning.ignored, said)
        return _bounce(session, settings, parsed, target, inbound_id, now)
    if target is not None and tagged is not None and tagged.role == Role.unsubscribe:
        evidence = Evidence(_asked(parsed), inbound_id)
        said = meaning.unsubscribe(session, target, evidence, now)
        return Outcome(InboundMeaning.unsubscribe, said, target=target)
    said = f"nothing: {parsed.reason}" + (f", sent to {recipient}" if recipient else "")
    return Outcome(InboundMeaning.unknown, said, target=target)


def _bounce(
    session: Session,
    settings: Settings,
    parsed: Parsed,
    target: Target,
    inbound_id: int,
    now: datetime,
) -> Outcome:
    report = parsed.report_for(target.email)
    if report is None:
        said = "nothing: a delivery report without per-recipient fields"
        return Outcome(InboundMeaning.unknown, said, target=target)
    status, diagnostic = report.status, report.diagnostic
    if report.action != "failed":
        said = f"nothing: a report of a delivery {report.action or 'without an action'}"
        return Outcome(InboundMeaning.unknown, said, status, diagnostic, target)
    kind = classify(report.reply_code, status, diagnostic or "")
    detail = " ".join(part for part in (status, diagnostic) if part) or parsed.reason
    said = meaning.bounce(session, settings, target, kind, Evidence(detail, inbound_id), now)
    return Outcome(meaning.bounce_meaning(kind), said, status, diagnostic, target)


def _complaint(
    session: Session, parsed: Parsed, target: Target | None, inbound_id: int, now: datetime
) -> Outcome:
    feedback_type = (parsed.feedback.feedback_type if parsed.feedback else None) or "abuse"
    if target is None:
        said = "nothing: a complaint that names none of our deliveries"
        return Outcome(InboundMeaning.ignored, said)
    if feedback_type == "not-spam":
        said = "nothing: a not-spam report"
        return Outcome(InboundMeaning.unknown, said, target=target)
    agent = parsed.feedback.user_agent if parsed.feedback else None
    detail = f"complaint ({feedback_type}) from {agent or parsed.head.sender or 'a receiver'}"
    said = meaning.complaint(session, target, Evidence(detail, inbound_id), now)
    return Outcome(InboundMeaning.complaint, said, diagnostic=detail, target=target)


def _event_outcome(
    session: Session, settings: Settings, event: ProviderEvent, inbound_id: int, now: datetime
) -> Outcome:
    reader = of_email(session, event.email)
    # The event's Message-ID names the delivery only if it is this very reader's.
    target = of_message_id(session, event.message_id, [reader.subscriber_id]) if reader else None
    target = target or reader
    if target is None:
        return Outcome(InboundMeaning.ignored, f"nothing: no reader has {event.email!r}")
    detail = f"{event.provider}: " + (
        " ".join(part for part in (event.status, event.diagnostic) if part) or event.kind
    )
    evidence = Evidence(detail[:1000], inbound_id)
    if event.kind == "bounce":
        kind = event.bounce_kind or classify(None, event.status, event.diagnostic or "")
        said = meaning.bounce(session, settings, target, kind, evidence, now)
        return Outcome(meaning.bounce_meaning(kind), said, event.status, event.diagnostic, target)
    if event.kind == "complaint":
        said = meaning.complaint(session, target, evidence, now)
        return Outcome(InboundMeaning.complaint, said, diagnostic=event.diagnostic, target=target)
    if event.kind == "unsubscribe" and target.subscription_id is not None:
        said = meaning.unsubscribe(session, target, evidence, now)
        return Outcome(InboundMeaning.unsubscribe, said, target=target)
    said = f"nothing: a {event.kind} event that names no subscription of ours"
    return Outcome(InboundMeaning.unknown, said, target=target)


def _asked(parsed: Parsed) -> str:
    who = parsed.head.sender or "someone"
    return f"a mail to the List-Unsubscribe address from {who}: {parsed.head.subject or ''}"


def _recipient_of(settings: Settings, parsed: Parsed) -> str | None:
    """The envelope recipient's best guess: the first Delivered-To or To that verifies."""
    domain = expected_domain(settings.bounce_domain)
    guesses = parsed.head.addressed_to
    signed = [a for a in guesses if read_signed(settings.secret, domain, a) is not None]
    candidates = signed or list(guesses)
    return candidates[0] if candidates else None


def _columns(
    settings: Settings, raw: bytes, channel: str, recipient: str | None, now: datetime
) -> dict[str, object]:
    keep = settings.inbound_keep_bytes
    return {
        "channel": channel,
        "recipient": recipient,
        "received_at": now,
        "size": len(raw),
        "raw": raw[:keep],
        "truncated": len(raw) > keep,
        "meaning": InboundMeaning.unknown,
    }


def _stored(
    session: Session,
    settings: Settings,
    raw: bytes,
    channel: str,
    recipient: str | None,
    now: datetime,
) -> InboundMessage:
    row = InboundMessage(**_columns(settings, raw, channel, recipient, now))
    session.add(row)
    session.flush()  # its id is the evidence the subscriber's history points to
    return row


def _finish(session: Session, row: InboundMessage, outcome: Outcome) -> Handled:
    target = outcome.target
    row.meaning = outcome.meaning
    row.changes = outcome.changes[:2000]
    row.status = outcome.status[:16] if outcome.status else None
    row.diagnostic = outcome.diagnostic
    row.delivery_id = target.delivery_id if target else None
    row.subscriber_id = target.subscriber_id if target else None
    row.recipient_domain = outcome.recipient_domain
    session.commit()
    return Handled(row.id, outcome.meaning, outcome.changes)
