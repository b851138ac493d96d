"""A digest whose lines start with "." arrives intact: byte for byte at a real SMTP server
(aiosmtpd, which undoes SMTP's dot-stuffing), CRLF only, no line over 998 octets.

SMTP ends a message's data at a line holding only "."; a line of the message that starts with
one must go out with a second one in front (RFC 5321, 4.5.2), or a reader's digest is cut
short or loses the dots of its text and of quoted-printable lines that wrap before a ".".
"""

import asyncio
from datetime import UTC, datetime

from tests.smtpserver import smtp_server
from tidings.config import Settings, SmtpTarget
from tidings.mail.edition import EditionMail
from tidings.mail.personal import SlotMarkers
from tidings.mail.transport import SmtpConnection

NOW = datetime(2026, 6, 27, 5, 0, tzinfo=UTC)
SETTINGS = Settings(secret_key="dot-test-secret-key-" + "x" * 32)
#: Lines a text part may hold: a dot alone, dots in front, and a long line that quoted-printable
#: wraps just before a dot (76 octets to a line, "=" included).
TEXT_LINES = [
    "Friday, June 27",
    ".",
    ".hidden line of the article",
    "..two dots in front",
    "x" * 75 + ".ge is the country code of Georgia",
    "The end.",
    ".",
]


def _mail() -> EditionMail:
    markers = SlotMarkers.absent_from(TEXT_LINES)
    slot = markers.personal()
    text = "\n".join([f"{slot.greeting}", *TEXT_LINES, f"Unsubscribe: {slot.unsubscribe_url}"])
    html = "<html><body>\n" + "\n".join(f"<p>{line}</p>" for line in TEXT_LINES) + "\n."
    html += f'\n<a href="{slot.unsubscribe_url}">Unsubscribe</a></body></html>'
    return EditionMail(
        settings=SETTINGS,
        edition_id=3,
        slug="daily",
        newsletter_name="The Daily Messenger",
        from_name="The Messenger",
        from_address="digest@messenger.example.ge",
        reply_to=None,
        subject="Today",
        html=markers.stored(html),
        text=markers.stored(text),
        date=NOW,
    )


async def _send(port: int, message: bytes) -> None:
    connection = SmtpConnection(SmtpTarget("127.0.0.1", port, "none", None, None), 5.0)
    try:
        await connection.send("digest@messenger.example.ge", "nino@example.ge", message)
    finally:
        await connection.close()


def test_lines_starting_with_a_dot_arrive_intact() -> None:
    built = _mail().message_for(11, "nino@example.ge", "Nino Beridze", "<m.11@example.ge>")
    lines = built.split(b"\r\n")
    assert b"\n" not in built.replace(b"\r\n", b"") and b"\r" not in built.replace(b"\r\n", b"")
    assert max(len(line) for line in lines) <= 998
    # The message itself has lines that SMTP must protect (quoted-printable writes a lone
    # dot as "=2E", but not a dot in front of more).
    assert sum(line.startswith(b".") for line in lines) >= 3

    with smtp_server() as (handler, port):
        asyncio.run(_send(port, built))
    (caught,) = handler.caught
    assert caught.data == built
    text_part, html_part = caught.message.iter_parts()
    text = text_part.get_content().replace("\r\n", "\n")
    assert "\n".join(TEXT_LINES) in text
    assert text.startswith("Hello Nino,\n")
    html = html_part.get_content()
    assert all(f"<p>{line}</p>" in html for line in TEXT_LINES)
