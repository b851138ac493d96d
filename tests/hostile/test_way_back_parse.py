"""The way back, hostile mail of every shape: warnings that are no failure, broken MIME,
deep nesting, giant headers and bytes of no charset. Each is read without raising, within
bounds, and changes only what it should. On SQLite and PostgreSQL where the database is used."""

import time

from sqlalchemy import func, select

from tests.inbound.people import readers, suppressed
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import BouncePoint, InboundMeaning, SubscriberEvent
from tidings.feedback.history import ARRIVAL
from tidings.inbound.parse import Kind, Parsed, parse_message
from tidings.inbound.service import handle_message


def _changed(db: Database) -> int:
    """Bounce points and history rows: anything a message changed for a reader."""
    with db.session() as session:
        points = session.scalar(select(func.count()).select_from(BouncePoint)) or 0
        changes = select(func.count()).where(SubscriberEvent.kind.not_in(ARRIVAL))
        events = session.scalar(changes) or 0
    return int(points) + int(events)


EXIM_DELAY = """\
Return-path: <>
From: Mail Delivery System <Mailer-Daemon@mx.example.org>
To: {rp}
Subject: Warning: message 1tXyz4-000Abc-2Q delayed 24 hours
Auto-Submitted: auto-replied
Delivered-To: {rp}

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.example.org.

The message identifier is:     1tXyz4-000Abc-2Q
The subject of the message is: The Daily Messenger

The address to which the message has not yet been delivered is:

  {reader}
    host mail.example.ge [192.0.2.7]
    Delay reason: SMTP error from remote mail server after RCPT TO:<{reader}>:
    452 4.2.2 Mailbox full

No action is required on your part. Delivery attempts will continue for
some time, and this warning may be repeated at intervals if the message
remains undelivered. Eventually the mail delivery software will give up,
and when that happens, the message will be returned to you.
"""


def test_a_free_text_delay_warning_is_not_a_bounce(db: Database, settings: Settings) -> None:
    """exim's "Warning: message ... delayed" is no failure: delivery goes on."""
    nino, *_ = readers(db, settings)
    raw = EXIM_DELAY.format(rp=nino.return_path, reader=nino.email).replace("\n", "\r\n")
    handled = handle_message(db, settings, raw.encode(), nino.return_path, "pipe")
    assert handled.meaning == InboundMeaning.unknown, handled
    assert _changed(db) == 0 and suppressed(db) == {}


def _timed_parse(raw: bytes) -> tuple[Parsed, float]:
    started = time.perf_counter()
    parsed = parse_message(raw)
    return parsed, time.perf_counter() - started


def test_deep_nesting_is_read_within_bounds() -> None:
    """A bounce that quotes a bounce that quotes a bounce... 3,000 deep, and a multipart
    nested as deep: read (or called unreadable) quickly, never a crash."""
    rfc822 = (
        b"".join(b"Content-Type: message/rfc822\r\n\r\n" for _ in range(3000))
        + b"Subject: bottom\r\n\r\nhi\r\n"
    )
    nested = b"".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
        for i in range(3000)
    )
    for body in (rfc822, nested):
        raw = b"From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered\r\n" + body
        parsed, seconds = _timed_parse(raw)
        assert parsed.kind in (Kind.dsn, Kind.unknown)
        assert seconds < 5


MAX_BYTES = 10 * 1024 * 1024  # TIDINGS_INBOUND_MAX_BYTES's default


def test_a_message_of_many_parts_is_read_within_bounds() -> None:
    """10 MB of tiny MIME parts (anyone with a subscription knows a signed address to send
    them to): the parser's work per part is large, so at most a bounded number are read."""
    part = b"--B\r\nContent-Type: text/plain\r\n\r\npart\r\n"
    head = b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
    many = head + part * ((MAX_BYTES - len(head)) // len(part)) + b"--B--\r\n"
    parsed, seconds = _timed_parse(many)
    assert parsed.kind == Kind.unknown
    assert seconds < 5


def test_many_delivered_to_headers_are_read_within_bounds() -> None:
    line = b"Delivered-To: someone@example.org\r\n"
    raw = line * (MAX_BYTES // len(line)) + b"To: b@example.org\r\n\r\nhello\r\n"
    parsed, seconds = _timed_parse(raw)
    assert parsed.head.addressed_to[:1] == ("someone@example.org",)
    assert seconds < 5


def test_giant_headers_and_no_charset_are_read() -> None:
    giant = b"Subject: " + b"x" * 5_000_000 + b"\r\nX-Folded: a\r\n" + b" b\r\n" * 100_000 + b"\r\n"
    latin = "From: Günther <g@example.de>\r\nSubject: Abwesenheit\r\n\r\nGrüße\r\n".encode(
        "latin-1"
    )
    bad_charset = (
        b"From: MAILER-DAEMON@mx.example.org\r\nSubject: failure notice\r\n"
        b"Content-Type: text/plain; charset=x-no-such\r\n\r\n550 5.1.1 \xff\xfe gone\r\n"
    )
    for raw in (giant, latin, bad_charset, b"\x00" * 1000, b"\r\n" * 10_000):
        parsed, seconds = _timed_parse(raw)
        assert seconds < 5, len(raw)
        assert isinstance(parsed.reason, str)
    assert parse_message(latin).kind == Kind.auto_reply
    assert parse_message(bad_charset).kind == Kind.dsn
