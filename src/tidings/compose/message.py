"""Build the MIME message of one delivery from an edition's compiled template.

Everything that is the same for every subscriber (From, Subject, List-Id, the MIME skeleton)
is encoded once per edition by :class:`MessageTemplate`; per subscriber only the To,
Message-ID and List-Unsubscribe headers are folded and the two bodies quoted-printable
encoded (binascii, in C), which keeps each message well under a millisecond.
"""

import binascii
import secrets
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.utils import format_datetime, formataddr

from tidings.errors import InvalidInput

_POLICY = policy.SMTP.clone(max_line_length=78)


class HeaderInjection(InvalidInput):
    """A header value carried a line break."""


def _single_line(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise HeaderInjection(f"the {name} header may not contain a line break")
    return value


def fold_header(name: str, value: str) -> str:
    """One header, folded and RFC 2047-encoded as needed, ending in CRLF."""
    header = _POLICY.header_factory(name, _single_line(name, value))
    return str(header.fold(policy=_POLICY))


def _qp(text: str) -> bytes:
    # Lines are kept under 76 octets with soft breaks, so nothing nears SMTP's 998 limit.
    # binascii picks the soft-break style from the first line ending it meets, so the text
    # always gets at least one CRLF (a final one) to keep every break CRLF.
    normalised = text.replace("\r\n", "\n").replace("\n", "\r\n")
    if not normalised.endswith("\r\n"):
        normalised += "\r\n"
    return binascii.b2a_qp(normalised.encode("utf-8"), istext=True)


@dataclass(frozen=True)
class Personalised:
    """One subscriber's values for the message."""

    to_email: str
    to_name: str | None
    message_id: str
    unsubscribe_url: str
    unsubscribe_mailto: str
    html: str
    text: str


class MessageTemplate:
    """The per-edition part of every message, encoded once."""

    def __init__(
        self,
        *,
        from_name: str,
        from_address: str,
        reply_to: str | None,
        subject: str,
        list_name: str,
        list_id: str,
        date: datetime,
    ) -> None:
        self.boundary = f"==tidings-{secrets.token_hex(12)}=="
        head = [
            fold_header("From", formataddr((from_name, from_address))),
            fold_header("Subject", subject),
            fold_header("Date", format_datetime(date)),
            fold_header("List-Id", formataddr((list_name, list_id))),
            fold_header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            fold_header("Precedence", "bulk"),
            fold_header("Auto-Submitted", "auto-generated"),
        ]
        if reply_to:
            head.append(fold_header("Reply-To", reply_to))
        self._head = "".join(head).encode("ascii")
        self._skeleton_top = (
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/alternative;\r\n"
            f' boundary="{self.boundary}"\r\n'
            "\r\n"
            "This is a multi-part message in MIME format.\r\n"
            f"--{self.boundary}\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode("ascii")
        self._skeleton_middle = (
            f"\r\n--{self.boundary}\r\n"
            'Content-Type: text/html; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        ).encode("ascii")
        self._skeleton_end = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    def build(self, personal: Personalised) -> bytes:
        """The complete message, CRLF line endings, ready for SMTP DATA."""
        unsubscribe = f"<{personal.unsubscribe_url}>, <{personal.unsubscribe_mailto}>"
        per_subscriber = (
            fold_header("To", formataddr((personal.to_name or "", personal.to_email)))
            + fold_header("Message-ID", personal.message_id)
            + fold_header("List-Unsubscribe", unsubscribe)
        ).encode("ascii")
        return b"".join(
            (
                self._head,
                per_subscriber,
                self._skeleton_top,
                _qp(personal.text),
                self._skeleton_middle,
                _qp(personal.html),
                self._skeleton_end,
            )
        )
