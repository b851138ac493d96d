"""What an inbound message is, read from its bytes alone (pure: no database, no clock).

- a delivery status notification (RFC 3464 ``multipart/report; report-type=delivery-status``,
  whether it returns the whole message, its headers only, or nothing), or a bounce in free
  text from a mail server that writes none (exim, qmail, old sendmail): read as well as it can
  be, and only when it is clearly a bounce (from MAILER-DAEMON or postmaster, or sent with an
  empty return path under a bounce's subject);
- an abuse report (RFC 5965 ``multipart/report; report-type=feedback-report``);
- an auto-reply or out-of-office (RFC 3834 ``Auto-Submitted``, the X-Autoreply family,
  ``Precedence: auto_reply``, or a vacation subject): never a bounce;
- an unsubscribe request (a person's mail saying so), or anything else.

A malformed message never raises out of :func:`parse_message`: it is ``unknown``, with the
reason. The work is bounded: the caller caps the bytes, and at most ``MAX_PARTS`` parts and
``TEXT_CAP`` characters of body text are looked at.
"""

import enum
import re
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses

from tidings.inbound.reports import (
    FeedbackReport,
    RecipientReport,
    Returned,
    feedback_report,
    field,
    plain_address,
    recipient_reports,
    returned_message,
)
from tidings.mail.status import enhanced_status

MAX_PARTS = 100
#: Lines starting with ``--`` read at most: every MIME boundary line does, and the email
#: package's work per part is large (a 10 MB message of tiny parts took minutes), so the
#: message is read up to the line before this many; a report's parts come far sooner.
MAX_DELIMITERS = 500
#: Delivered-To and To values kept as guesses of the envelope recipient.
MAX_ADDRESSED = 20
TEXT_CAP = 64 * 1024

_DAEMONS = {"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster"}
_BOUNCE_SUBJECT = re.compile(
    r"mail delivery (failed|failure|system)|delivery status notification|undeliver(ed|able)|"
    r"returned mail|failure notice|delivery (failure|has failed|failed)|non-?deliver|"
    r"could not be delivered|unzustellbar|nicht zugestellt",
    re.IGNORECASE,
)
_VACATION_SUBJECT = re.compile(
    r"out of (the )?office|automatic reply|auto[- ]?reply|autoresponse|auto response|"
    r"vacation|on holiday|on leave|away from (my|the) (desk|office)|abwesenheit|abwesend|"
    r"automatische antwort|r[ée]ponse automatique|absence|respuesta autom[áa]tica|"
    r"fuera de la oficina|risposta automatica|automatisch antwoord|afwezig",
    re.IGNORECASE,
)
_UNSUBSCRIBE_WORDS = re.compile(
    r"\b(unsubscribe|remove me|opt[- ]?out|abmelden|abbestellen|d[ée]sabonner|darse de baja)\b",
    re.IGNORECASE,
)
#: Where a free-text bounce starts quoting the message it returns (nothing after is read).
_QUOTE_MARKERS = re.compile(
    r"^-+ ?(this is a copy of|below this line is a copy|original message|"
    r"the original message|undelivered message)|^original message follows",
    re.IGNORECASE | re.MULTILINE,
)
#: A warning that delivery is delayed and still being tried (exim's "Warning: message ...
#: delayed 24 hours", sendmail's "Warning: could not send message for past 4 hours"): no
#: failure, whatever reply code it quotes.
_DELAY_SUBJECT = re.compile(r"^warning:|\bdelayed\b|\bdelay(ed)? (warning|notification)", re.I)
_DELAY_WORDS = re.compile(
    r"not yet been delivered|delivery attempts will continue|will (keep|continue) (trying|to try)|"
    r"still (trying|being retried)|no action is required on your part",
    re.IGNORECASE,
)
_REPLY_LINE = re.compile(r"(?<![\d.])[45]\d\d[ -]|(?<![\d.])[45]\.\d{1,3}\.\d{1,3}(?![\d.])")
_ANGLE_ADDRESS = re.compile(r"<([^<>@\s]+@[^<>@\s]+)>")


class Kind(enum.StrEnum):
    dsn = "dsn"
    arf = "arf"
    auto_reply = "auto_reply"
    unsubscribe = "unsubscribe"
    unknown = "unknown"


@dataclass(frozen=True)
class Head:
    """The message's own headers that matter here."""

    subject: str | None = None
    #: The From address.
    sender: str | None = None
    #: The Return-Path header: "" for ``<>``, None when there is none.
    return_path: str | None = None
    #: Delivered-To values (topmost first), then To addresses: guesses of the envelope
    #: recipient when the caller does not know it.
    addressed_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Parsed:
    """What a message is, and the fields that say whom and what it is about."""

    kind: Kind
    #: Why it was taken to be this kind, in words ("Auto-Submitted: auto-replied").
    reason: str
    head: Head = Head()
    recipients: tuple[RecipientReport, ...] = ()
    feedback: FeedbackReport | None = None
    returned: Returned | None = None
    #: False for a bounce read from free text (best effort).
    standard: bool = True

    def report_for(self, email: str | None) -> RecipientReport | None:
        """The per-recipient report about ``email``, else the first failed one, else the first."""
        wanted = (email or "").lower()
        for report in self.recipients:
            if wanted and wanted in (
                (report.final_recipient or "").lower(),
                (report.original_recipient or "").lower(),
            ):
                return report
        failed = [report for report in self.recipients if report.action == "failed"]
        candidates = failed or list(self.recipients)
        return candidates[0] if candidates else None


def asks_to_leave(subject: str | None) -> bool:
    """The subject asks to unsubscribe (as our List-Unsubscribe mailto's own subject does)."""
    return bool(subject and _UNSUBSCRIBE_WORDS.search(subject))


def parse_message(raw: bytes) -> Parsed:
    """Read ``raw`` (already capped by the caller); never raises."""
    try:
        message = message_from_bytes(_bounded(raw), policy=policy.default)
        return _parse(message)
    except Exception as exc:  # malformed mail is kept, not a crash
        return Parsed(Kind.unknown, f"unreadable: {type(exc).__name__}")


def _parse(message: Message) -> Parsed:
    subject = field(message, "Subject")
    sender = plain_address(field(message, "From"))
    base = Head(
        subject=subject,
        sender=sender,
        return_path=plain_address(field(message, "Return-Path")),
        addressed_to=_addressed_to(message),
    )
    report = _report(message)
    if report is not None:
        report_type = str(report.get_param("report-type") or "").lower()
        if report_type == "delivery-status":
            return _dsn(_parts(report), base)
        if report_type == "feedback-report":
            return _arf(_parts(report), base)
    daemon = (sender or "").partition("@")[0].lower() in _DAEMONS
    bounce_subject = bool(subject and _BOUNCE_SUBJECT.search(subject))
    text = _body_text(message)
    if daemon and (bounce_subject or _REPLY_LINE.search(text)):
        return _free_text_bounce(text, base, f"a bounce in free text from {sender}")
    automatic = _auto_reply(message, subject)
    if automatic is not None:
        return Parsed(Kind.auto_reply, automatic, base)
    if base.return_path == "" and bounce_subject:
        return _free_text_bounce(text, base, "a bounce in free text (empty return path)")
    own_words = "\n".join(text.splitlines()[:5])
    for words, where in ((subject or "", "subject"), (own_words, "text")):
        found = _UNSUBSCRIBE_WORDS.search(words)
        if found:
            return Parsed(Kind.unsubscribe, f"'{found.group(0)}' in its {where}", base)
    return Parsed(Kind.unknown, "not a report, an auto-reply or a request", base)


def _dsn(parts: list[Message], base: Head) -> Parsed:
    recipients: list[RecipientReport] = []
    returned = None
    for part in parts:
        content_type = part.get_content_type()
        if content_type in ("message/delivery-status", "message/global-delivery-status"):
            recipients += recipient_reports(part)
        elif returned is None:
            returned = returned_message(part)
    reason = "a delivery status notification (RFC 3464)"
    if not recipients:
        reason += " without per-recipient fields"
    return Parsed(Kind.dsn, reason, base, recipients=tuple(recipients), returned=returned)


def _arf(parts: list[Message], base: Head) -> Parsed:
    feedback = None
    returned = None
    for part in parts:
        if part.get_content_type() == "message/feedback-report" and feedback is None:
            feedback = feedback_report(part)
        elif returned is None:
            returned = returned_message(part)
    kind = (feedback.feedback_type if feedback else None) or "unstated"
    reason = f"an abuse feedback report (RFC 5965), type {kind}"
    return Parsed(Kind.arf, reason, base, feedback=feedback, returned=returned)


def _free_text_bounce(text: str, base: Head, reason: str) -> Parsed:
    """A bounce without a report: the first line that carries a reply or status code."""
    own = text[: found.start()] if (found := _QUOTE_MARKERS.search(text)) else text
    lines = [" ".join(line.split()) for line in own.splitlines()]
    coded = [line for line in lines if enhanced_status(line)] or [
        line for line in lines if _REPLY_LINE.search(line)
    ]
    diagnostic = coded[0][:1000] if coded else None
    status = enhanced_status(own) if own else None
    address = _ANGLE_ADDRESS.search(diagnostic or "")
    delayed = _DELAY_SUBJECT.search(base.subject or "") or _DELAY_WORDS.search(own)
    report = RecipientReport(
        final_recipient=address.group(1) if address else None,
        original_recipient=None,
        action="delayed" if delayed else "failed",
        status=status,
        diagnostic=diagnostic,
    )
    return Parsed(Kind.dsn, reason, base, recipients=(report,), standard=False)


def _auto_reply(message: Message, subject: str | None) -> str | None:
    """Why the message is an automatic reply (RFC 3834 and common practice), or None."""
    submitted = (field(message, "Auto-Submitted") or "").lower()
    if submitted and submitted.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {submitted}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"):
        if field(message, name):
            return f"{name} header"
    precedence = (field(message, "Precedence") or "").lower()
    if precedence == "auto_reply":
        return "Precedence: auto_reply"
    if subject and (found := _VACATION_SUBJECT.search(subject)):
        return f"'{found.group(0)}' in its subject"
    return None


def _tree(message: Message) -> list[Message]:
    """``message`` and the parts under it, breadth first, at most ``MAX_PARTS`` of them; a
    ``message/*`` part is one part (what a report quotes is not looked into)."""
    found: list[Message] = []
    queue = deque([message])
    while queue and len(found) < MAX_PARTS:
        part = queue.popleft()
        found.append(part)
        payload = part.get_payload()
        if part.get_content_maintype() == "multipart" and isinstance(payload, list):
            queue.extend(p for p in payload[:MAX_PARTS] if isinstance(p, Message))
    return found


def _report(message: Message) -> Message | None:
    """The ``multipart/report`` part: the message itself, or a part of its own multipart."""
    reports = [p for p in _tree(message) if p.get_content_type() == "multipart/report"]
    return reports[0] if reports else None


def _parts(message: Message) -> list[Message]:
    """The parts under ``message`` that are not multipart themselves."""
    return [part for part in _tree(message) if part.get_content_maintype() != "multipart"]


def _body_text(message: Message) -> str:
    """The first text/plain part's text (capped); "" when there is none or it is unreadable."""
    for part in _parts(message):
        if part.get_content_type() != "text/plain":
            continue
        try:
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                return ""
            charset = part.get_content_charset() or "utf-8"
            try:
                return payload[:TEXT_CAP].decode(charset, "replace")
            except LookupError:
                return payload[:TEXT_CAP].decode("utf-8", "replace")
        except Exception:
            return ""
    return ""


def _bounded(raw: bytes) -> bytes:
    """``raw`` up to its :data:`MAX_DELIMITERS`-th line that starts with ``--``."""
    at = -1
    for _ in range(MAX_DELIMITERS):
        at = raw.find(b"\n--", at + 1)
        if at < 0:
            return raw
    return raw[: at + 1]


def _addressed_to(message: Message) -> tuple[str, ...]:
    """The first Delivered-To values, then the To addresses, at most :data:`MAX_ADDRESSED`:
    read from the raw headers, as each one parsed costs much and a message may repeat them
    by the hundred thousand."""
    delivered: list[str] = []
    tos: list[str] = []
    try:
        for name, value in message.raw_items():
            if len(delivered) >= MAX_ADDRESSED and len(tos) >= MAX_ADDRESSED:
                break
            name = name.lower()
            if name == "delivered-to" and len(delivered) < MAX_ADDRESSED:
                delivered.append(" ".join(str(value).split()).strip("<>"))
            elif name == "to" and len(tos) < MAX_ADDRESSED:
                tos.append(" ".join(str(value).split())[:1000])
        addresses = [address for _name, address in getaddresses(tos) if address]
    except Exception:  # a malformed header: the guesses read so far
        addresses = []
    return tuple(value for value in delivered + addresses if value)[:MAX_ADDRESSED]
