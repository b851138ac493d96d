"""Build the MIME message of one delivery from an edition's compiled template.

Everything that is the same for every subscriber (From, Subject, List-Id, the MIME skeleton)
is encoded once per edition by :class:`MessageTemplate`, and the bodies' literal segments
once by :class:`QuotedPrintableTemplate`; per subscriber only the To, Message-ID and
List-Unsubscribe headers are folded and the personal values quoted-printable encoded
(binascii, in C; a value many readers share, such as the archive link, once per edition),
which keeps each message well under a millisecond.
"""

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.utils import format_datetime, formataddr

from tidings.errors import InvalidInput
from tidings.mail.personal import SlotTemplate

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


def plain_header(name: str, value: str) -> str:
    """A header whose value is one ASCII token (a URI in angle brackets, an id), written as
    it is: the email package's folder could encode a long URI and break it."""
    if not value.isascii():
        raise InvalidInput(f"the {name} header must be ASCII")
    return f"{name}: {_single_line(name, value)}\r\n"


#: Octets per RFC 2047 encoded word: 56 base64 characters, so "Subject: =?utf-8?b?...?="
#: is 77 characters, within the 78 of a line (a multiple of 3: no padding but the last).
_WORD_OCTETS = 42
_PLAIN_SUBJECT = re.compile(r"^[\x20-\x7e]*$")


def _encoded_words(value: str) -> list[str]:
    """``value`` as base64 encoded words of whole characters, each at most 75 characters."""
    chunks: list[bytes] = [b""]
    for char in value:
        octets = char.encode("utf-8")
        if len(chunks[-1]) + len(octets) > _WORD_OCTETS:
            chunks.append(b"")
        chunks[-1] += octets
    return [f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=" for chunk in chunks]


def subject_header(subject: str) -> str:
    """The Subject header, folded so that its first line always carries text (the email
    package may start a long encoded subject on a continuation line, which some clients show
    as an empty subject): plain ASCII folded at spaces, anything else (or a word too long
    for a line) as encoded words of whole characters, one per line."""
    value = _single_line("Subject", subject)
    words = value.split(" ")
    fits = all(len("Subject: ") + len(word) <= LINE_LIMIT for word in words)
    if not (_PLAIN_SUBJECT.match(value) and "=?" not in value and fits):
        return "Subject: " + "\r\n ".join(_encoded_words(value)) + "\r\n"
    lines = ["Subject:"]
    for word in words:
        # A line is broken only before a word, and only once it carries one itself.
        carries = lines[-1].strip() not in ("", "Subject:")
        if word and carries and len(lines[-1]) + 1 + len(word) > LINE_LIMIT:
            lines.append("")
        lines[-1] += " " + word
    return "\r\n".join(lines) + "\r\n"


_BARE_LF = re.compile(rb"(?<!\r)\n")
LINE_LIMIT = 78


def _crlf(encoded: bytes) -> bytes:
    return _BARE_LF.sub(b"\r\n", encoded)


def _qp_piece(text: str) -> bytes:
    """A piece of a body, quoted-printable, ending in a soft line break so that the next
    piece starts on a fresh line (decoders join them back without a trace)."""
    if "\n" in text or "\r" in text:
        normalised = text.replace("\r\n", "\n").replace("\n", "\r\n")
        encoded = _crlf(binascii.b2a_qp(normalised.encode("utf-8"), istext=True))
    else:
        # One line in (a personal value, as a rule): every "\n" out is a soft line break.
        encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
    return _soft_end(encoded)


#: Octets of a quoted-printable line, its soft break's "=" included (RFC 2045, 6.7).
QP_LINE_LIMIT = 76


def _soft_end(encoded: bytes) -> bytes:
    """``encoded`` ending in a soft line break. A last line already 76 octets long gives its
    last character (or "=XX" escape) to a line of its own first, so that no line passes 76."""
    if encoded.endswith(b"\r\n"):
        return encoded
    if len(encoded) - (encoded.rfind(b"\n") + 1) < QP_LINE_LIMIT:
        return encoded + b"=\r\n"
    cut = len(encoded) - 1
    if encoded[cut - 2 : cut - 1] == b"=":
        cut -= 2  # never inside an escape
    return encoded[:cut] + b"=\r\n" + encoded[cut:] + b"=\r\n"


#: Values kept encoded per template: enough for the greetings and sign-up days of an edition.
_KEPT_VALUES = 4096


class QuotedPrintableTemplate:
    """A body split into literal segments and slots, its segments encoded once per edition.

    Only the personal values are encoded per subscriber; each encoded piece ends in a soft
    line break, so no line grows past 76 octets however the pieces are joined. The values of
    the ``repeating`` slots (the same for many readers: the archive link, a greeting, a
    sign-up day) are encoded once each and kept, up to a bound.
    """

    def __init__(self, body: SlotTemplate, repeating: frozenset[str] = frozenset()) -> None:
        self._constants = [_qp_piece(text) for text in body.literals]
        self._names = body.names
        self._repeating = repeating
        self._kept: dict[str, bytes] = {}

    def _encoded(self, name: str, value: str) -> bytes:
        if name not in self._repeating:
            return _qp_piece(value)
        piece = self._kept.get(value)
        if piece is None:
            piece = _qp_piece(value)
            if len(self._kept) < _KEPT_VALUES:
                self._kept[value] = piece
        return piece

    def render(self, values: Mapping[str, str]) -> bytes:
        parts = [self._constants[0]]
        for name, constant in zip(self._names, self._constants[1:], strict=True):
            parts.append(self._encoded(name, values[name]))
            parts.append(constant)
        return b"".join(parts)


_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")
#: A phrase of RFC 5322 atoms, single spaces between them: written as it is.
_ATOMS = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def _display_name(name: str) -> list[str]:
    """A display name as header words: its own words when it is plain words, one quoted string
    when it is other printable ASCII (quotes and backslashes escaped), else RFC 2047 encoded
    words of whole characters (adjacent ones join back without the space between them); a
    name with "=?" is always encoded, as readers would decode it."""
    if "=?" not in name and _ATOMS.match(name):
        return name.split(" ")  # a phrase may be folded between its words
    if "=?" not in name and _PRINTABLE_ASCII.match(name):
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return _encoded_words(name)


def address_line(header: str, name: str | None, email: str) -> str:
    """An address header line with one mailbox (From, To, List-Id): the name as a quoted
    string or as encoded words, the address in angle brackets, folded only between words.

    Written here rather than by the email package, whose folder re-parses the encoded name
    and writes specials next to an encoded word bare ("=?utf-8?b?...?= News: Tbilisi,
    Georgia <a@b>" is a group and two mailboxes: a From header that mail providers refuse)."""
    value = _single_line(header, name or "")
    if not email.isascii():  # an internationalised address needs SMTPUTF8 anyway
        return fold_header(header, formataddr((value, email)))
    if not value:
        return f"{header}: <{_single_line(header, email)}>\r\n"
    words = [*_display_name(value), f"<{_single_line(header, email)}>"]
    if any(len(header) + 2 + len(word) > LINE_LIMIT for word in words[:-1]):
        words = [*_encoded_words(value), words[-1]]  # a word too long for a line: encoded
    lines = [f"{header}:"]
    for word in words:
        if lines[-1] != f"{header}:" and len(lines[-1]) + 1 + len(word) > LINE_LIMIT:
            lines.append("")
        lines[-1] += " " + word
    return "\r\n".join(lines) + "\r\n"


@dataclass(frozen=True)
class Personalised:
    """One subscriber's values for the message; the bodies already quoted-printable."""

    to_email: str
    to_name: str | None
    message_id: str
    unsubscribe_url: str
    unsubscribe_mailto: str
    html_qp: bytes
    text_qp: bytes
    #: Where the reader finds help with their subscription (their preferences page).
    list_help: str | None = None


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
        list_archive: str | None = None,
        feedback_id: str | None = None,
    ) -> None:
        self.boundary = f"==tidings-{secrets.token_hex(12)}=="
        head = [
            address_line("From", from_name, from_address),
            subject_header(subject),
            fold_header("Date", format_datetime(date)),
            address_line("List-Id", list_name, list_id),
            fold_header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            # Nobody posts to a newsletter (RFC 2369).
            "List-Post: NO\r\n",
            fold_header("Precedence", "bulk"),
            fold_header("Auto-Submitted", "auto-generated"),
        ]
        if reply_to:
            head.append(fold_header("Reply-To", reply_to))
        if list_archive:
            head.append(plain_header("List-Archive", f"<{list_archive}>"))
        if feedback_id:
            # Gmail's Feedback Loop groups complaints by this ("a:b:c:SenderId").
            head.append(plain_header("Feedback-ID", feedback_id))
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
        message_id = _single_line("Message-ID", personal.message_id)
        url = _single_line("List-Unsubscribe", personal.unsubscribe_url)
        mailto = _single_line("List-Unsubscribe", personal.unsubscribe_mailto)
        per_subscriber = (
            address_line("To", _single_line("To", personal.to_name or ""), personal.to_email)
            + f"Message-ID: {message_id}\r\n"
            # One URI per line keeps each line short without the email package's folder.
            + f"List-Unsubscribe: <{url}>,\r\n <{mailto}>\r\n"
            + (plain_header("List-Help", f"<{personal.list_help}>") if personal.list_help else "")
        ).encode("ascii")
        return b"".join(
            (
                self._head,
                per_subscriber,
                self._skeleton_top,
                personal.text_qp,
                self._skeleton_middle,
                personal.html_qp,
                self._skeleton_end,
            )
        )
