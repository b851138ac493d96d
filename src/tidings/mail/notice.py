"""Transactional mail such as the double opt-in confirmation, rendered once per message.

Each kind is a template triplet ``email/<kind>/`` like the digest, so operators restyle it
the same way. These messages are few, so the stdlib email package builds them.

The two bodies are built as plain MIME parts and attached to the root by hand: the email
package's ``set_content``/``add_alternative`` on an :class:`~email.message.EmailMessage`
make each part an ``EmailMessage`` too, and each one then carries its own ``MIME-Version``
header, which belongs on the top-level message only (RFC 2045, section 4).
"""

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, make_msgid
from typing import Any

from tidings.config import Settings
from tidings.db.models import Newsletter
from tidings.db.types import utcnow
from tidings.mail.css import inline_css
from tidings.mail.message import address_line
from tidings.mail.returnpath import Role, bounce_domain, tagged_address
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
    #: A list mail's list, as (name, id), for its List-Id header.
    list_id: tuple[str, str] | None = None


def subscription_notice(
    settings: Settings,
    newsletter: Newsletter,
    subscription_id: int,
    email: str,
    name: str | None,
    list_id: tuple[str, str] | None = None,
) -> tuple[str, Notice]:
    """The envelope sender and the addresses of a mail about one subscription (the
    confirmation, the welcome): from the newsletter to the reader, returned to the
    subscription's signed notice address on the bounce domain, so a bounce names it."""
    domain = bounce_domain(settings.bounce_domain, newsletter.from_address)
    sender = tagged_address(settings.secret, Role.notice, subscription_id, domain)
    notice = Notice(
        from_name=newsletter.from_name,
        from_address=newsletter.from_address,
        reply_to=newsletter.reply_to,
        to_email=email,
        to_name=name,
        list_id=list_id,
    )
    return sender, notice


def _part(body: str, subtype: str) -> MIMEPart:
    """One body part: UTF-8, quoted-printable, and no header but its content headers."""
    part = MIMEPart(policy=_POLICY)
    part.set_content(body, subtype=subtype, cte="quoted-printable")
    return part


def notice_message(
    settings: Settings,
    kind: str,
    notice: Notice,
    context: dict[str, Any],
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Render ``email/<kind>/`` with ``context`` and build the MIME message.

    ``headers`` are added as they are (a list mail's List-Unsubscribe); like every header
    here they cannot carry CR/LF: the email package refuses them. From, To and List-Id are
    written by :func:`~tidings.mail.message.address_line`, as the digest's are: the email
    package's folder can turn a name with a colon or comma into a group of mailboxes."""
    templates = load_triplet(email_environment(settings.templates_dir), kind)
    subject = " ".join(templates.subject.render(context).split())
    # Typed as the parts' class, which is all that ``attach`` needs of it.
    message: MIMEPart = EmailMessage(policy=_POLICY)
    # The email package refuses CR/LF in header values, so no data can add a header.
    if notice.reply_to:
        message["Reply-To"] = notice.reply_to
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    domain = notice.from_address.rsplit("@", 1)[-1]
    message["Message-ID"] = make_msgid(f"tidings.{kind}.{secrets.token_hex(6)}", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        message[name] = value
    message["MIME-Version"] = "1.0"
    message.make_alternative()
    message.attach(_part(templates.text.render(context), "plain"))
    message.attach(_part(inline_css(templates.html.render(context)), "html"))
    addresses = address_line("From", notice.from_name, notice.from_address) + address_line(
        "To", notice.to_name, notice.to_email
    )
    if notice.list_id is not None:
        addresses += address_line("List-Id", *notice.list_id)
    return addresses.encode("utf-8") + message.as_bytes()
