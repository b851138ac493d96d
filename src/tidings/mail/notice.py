"""Transactional mail such as the double opt-in confirmation, rendered once per message.

Each kind is a template triplet ``email/<kind>/`` like the digest, so operators restyle it
the same way. These messages are few, so the stdlib email package builds them.
"""

import secrets
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from tidings.config import Settings
from tidings.db.types import utcnow
from tidings.mail.css import inline_css
from tidings.mail.templates import email_environment, load_triplet

_POLICY = policy.SMTP.clone(max_line_length=78)


@dataclass(frozen=True)
class Notice:
    """One transactional message to one person."""

    from_name: str
    from_address: str
    reply_to: str | None
    to_email: str
    to_name: str | None


def notice_message(settings: Settings, kind: str, notice: Notice, context: dict[str, Any]) -> bytes:
    """Render ``email/<kind>/`` with ``context`` and build the MIME message."""
    templates = load_triplet(email_environment(settings.templates_dir), kind)
    subject = " ".join(templates.subject.render(context).split())
    message = EmailMessage(policy=_POLICY)
    # The email package refuses CR/LF in header values, so no data can add a header.
    message["From"] = formataddr((notice.from_name, notice.from_address))
    if notice.reply_to:
        message["Reply-To"] = notice.reply_to
    message["To"] = formataddr((notice.to_name or "", notice.to_email))
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    domain = notice.from_address.rsplit("@", 1)[-1]
    message["Message-ID"] = make_msgid(f"tidings.{kind}.{secrets.token_hex(6)}", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(templates.text.render(context), cte="quoted-printable")
    html = inline_css(templates.html.render(context))
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message.as_bytes()
