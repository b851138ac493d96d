"""The machine-readable parts of a report: the per-recipient fields of a delivery status
notification (RFC 3464), the fields of an abuse feedback report (RFC 5965), and the headers
of the message a report returns (whole, as headers only, or not at all).

Every value is read defensively: one line, whitespace collapsed, capped; a field that cannot
be read is None, never an exception.
"""

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from email.utils import getaddresses
from typing import Any

from tidings.mail.status import enhanced_status

#: The longest value kept of any one field (a diagnostic line is rarely longer than 300).
FIELD_CAP = 1000
#: At most this many per-recipient blocks are read from one DSN.
MAX_RECIPIENTS = 50


def field(message: Message | Any, name: str) -> str | None:
    """One header or field of ``message`` as a single capped line, or None when absent or
    unreadable (the email package may raise on a malformed header when asked for it)."""
    try:
        value = message.get(name)
        if value is None:
            return None
        text = " ".join(str(value).split())
    except Exception:  # a malformed header is only an absent one
        return None
    return text[:FIELD_CAP] or None


def typed_address(value: str | None) -> str | None:
    """``rfc822; user@example.org`` -> ``user@example.org`` (the address type dropped)."""
    if not value:
        return None
    _kind, semicolon, address = value.partition(";")
    address = (address if semicolon else value).strip().strip("<>").strip()
    return address or None


def plain_address(value: str | None) -> str | None:
    """The first address of a header value (``Name <a@b>`` -> ``a@b``); ``<>`` -> ``""``."""
    if value is None:
        return None
    if value.strip() in ("<>", ""):
        return ""
    try:
        found = [address for _name, address in getaddresses([value]) if address]
    except Exception:
        return None
    return found[0] if found else None


@dataclass(frozen=True)
class RecipientReport:
    """One per-recipient block of a DSN."""

    final_recipient: str | None
    original_recipient: str | None
    #: failed, delayed, delivered, relayed or expanded (lower case).
    action: str | None
    #: The enhanced status code (``5.1.1``).
    status: str | None
    diagnostic: str | None

    @property
    def reply_code(self) -> int | None:
        """The basic SMTP reply code of the diagnostic (``smtp; 550 ...`` -> 550)."""
        text = (self.diagnostic or "").partition(";")[2].strip() or (self.diagnostic or "")
        head = text[:3]
        return int(head) if head.isdigit() and head[0] in "245" else None


def recipient_reports(status_part: Message) -> list[RecipientReport]:
    """The per-recipient blocks of a ``message/delivery-status`` part (the first block is
    about the message as a whole and is skipped)."""
    blocks = status_part.get_payload()
    if not isinstance(blocks, list):
        return []
    reports = []
    for block in blocks[1 : MAX_RECIPIENTS + 1]:
        if not isinstance(block, Message):
            continue
        status = field(block, "Status")
        reports.append(
            RecipientReport(
                final_recipient=typed_address(field(block, "Final-Recipient")),
                original_recipient=typed_address(field(block, "Original-Recipient")),
                action=(field(block, "Action") or "").lower() or None,
                status=enhanced_status(status) if status else None,
                diagnostic=field(block, "Diagnostic-Code"),
            )
        )
    return reports


@dataclass(frozen=True)
class Returned:
    """What a report quotes of the message it is about: the headers that name our delivery."""

    return_path: str | None
    message_id: str | None
    list_unsubscribe: str | None
    to: str | None

    @classmethod
    def of(cls, headers: Message) -> "Returned":
        return cls(
            return_path=plain_address(field(headers, "Return-Path")),
            message_id=field(headers, "Message-ID"),
            list_unsubscribe=field(headers, "List-Unsubscribe"),
            to=plain_address(field(headers, "To")),
        )


def returned_message(part: Message) -> Returned | None:
    """The headers of the returned message: ``message/rfc822`` (whole) or
    ``text/rfc822-headers`` (headers only); None for any other part."""
    content_type = part.get_content_type()
    if content_type in ("message/rfc822", "message/global"):
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        return Returned.of(inner) if isinstance(inner, Message) else None
    if content_type in ("text/rfc822-headers", "text/global-headers"):
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            return Returned.of(BytesHeaderParser().parsebytes(payload[: FIELD_CAP * 64]))
        if isinstance(payload, str):
            return Returned.of(HeaderParser().parsestr(payload[: FIELD_CAP * 64]))
    return None


@dataclass(frozen=True)
class FeedbackReport:
    """The fields of a ``message/feedback-report`` part (RFC 5965)."""

    #: abuse, fraud, virus, not-spam, other (lower case).
    feedback_type: str | None
    original_mail_from: str | None
    original_rcpt_to: str | None
    user_agent: str | None
    reported_domain: str | None


def feedback_report(part: Message) -> FeedbackReport:
    """Read a ``message/feedback-report`` part: the email package parses its fields as the
    headers of one inner message."""
    payload = part.get_payload()
    fields: Message | None = None
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        fields = payload[0]
    elif isinstance(payload, str):
        fields = HeaderParser().parsestr(payload[: FIELD_CAP * 16])
    if fields is None:
        return FeedbackReport(None, None, None, None, None)
    return FeedbackReport(
        feedback_type=(field(fields, "Feedback-Type") or "").lower() or None,
        original_mail_from=plain_address(field(fields, "Original-Mail-From")),
        original_rcpt_to=plain_address(field(fields, "Original-Rcpt-To")),
        user_agent=field(fields, "User-Agent"),
        reported_domain=field(fields, "Reported-Domain"),
    )
