"""The way back, hostile mail of every shape: warnings that are no failure, broken MIME,
deep nesting, giant headers and bytes of no charset. Each is read without raising, within
bounds, and changes only what it should. On SQLite and PostgreSQL where the database is used."""

from sqlalchemy import func, select

from tests.inbound.people import readers, suppressed
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import BouncePoint, InboundMeaning, SubscriberEvent
from tidings.inbound.service import handle_message


def _changed(db: Database) -> int:
    """Bounce points and history rows: anything a message changed for a reader."""
    with db.session() as session:
        points = session.scalar(select(func.count()).select_from(BouncePoint)) or 0
        events = session.scalar(select(func.count()).select_from(SubscriberEvent)) or 0
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
