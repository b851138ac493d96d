"""A real delivery and the mail that comes back for it, for the listener and IMAP tests: an
edition composed for two readers, each delivery's signed return path, and a DSN in the shape
Postfix writes (RFC 3464), or an unrelated message."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.builders import articles, newsletter, subscribers
from tidings.compose.service import compose_scheduled
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, InboundMessage, Subscriber, Suppression
from tidings.mail.returnpath import Role, bounce_domain, tagged_address

SLOT = datetime(2026, 6, 26, 4, 0, tzinfo=UTC)  # 08:00 in Tbilisi
SENDER_ADDRESS = "digest@messenger.example.ge"


@dataclass(frozen=True)
class Sent:
    """A reader's delivery and the return path it was sent with."""

    email: str
    delivery_id: int
    return_path: str


def sent_edition(db: Database, settings: Settings, readers: int = 2) -> list[Sent]:
    """An edition of the daily newsletter fanned out to ``readers`` readers."""
    nl = newsletter(db)
    articles(db, "daily", 2, SLOT - timedelta(hours=5), seen=SLOT - timedelta(hours=5))
    subscribers(db, "daily", readers)
    compose_scheduled(db, settings, nl, SLOT)
    domain = bounce_domain(settings.bounce_domain, SENDER_ADDRESS)
    with db.session() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.id)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .order_by(Subscriber.email)
        ).all()
    return [
        Sent(email, delivery_id, tagged_address(settings.secret, Role.bounce, delivery_id, domain))
        for email, delivery_id in rows
    ]


def forged(return_path: str) -> str:
    """The same address with one character of its mac changed."""
    local, _, domain = return_path.rpartition("@")
    last = "a" if local[-1] != "a" else "b"
    return f"{local[:-1]}{last}@{domain}"


def dsn(return_path: str, reader: str, status: str = "5.1.1", padding: int = 0) -> bytes:
    """A delivery status notification for ``reader``, sent back to ``return_path``."""
    boundary = "4Zk2Fj1xQbz9sBq.1736827273/relay.messenger.example.ge"
    code = "550" if status.startswith("5") else "452"
    filler = ("The Messenger reports from Tbilisi. " * 2 + "\r\n") * (padding // 74 + 1)
    return (
        "Return-Path: <>\r\n"
        f"Delivered-To: {return_path}\r\n"
        "Date: Tue, 14 Jan 2025 08:01:13 +0400\r\n"
        "From: MAILER-DAEMON@relay.messenger.example.ge (Mail Delivery System)\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"To: {return_path}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        f'\tboundary="{boundary}"\r\n'
        "Message-Id: <20250114040113.4Zk2Fj1xQbz9sBq@relay.messenger.example.ge>\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"<{reader}>: host mx.example.ge said: {code} {status} User unknown\r\n"
        + (filler if padding else "")
        + f"\r\n--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; relay.messenger.example.ge\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {reader}\r\n"
        "Action: failed\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: smtp; {code} {status} <{reader}>: User unknown\r\n"
        "\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def letter(to: str = "bounces@messenger.example.ge") -> bytes:
    """A message that is neither a bounce nor addressed to a signed address."""
    return (
        "From: Nino Abashidze <nino@example.ge>\r\n"
        f"To: {to}\r\n"
        "Subject: A question about Friday's edition\r\n"
        "Date: Fri, 27 Jun 2025 09:00:00 +0400\r\n"
        "Message-ID: <question-1@example.ge>\r\n"
        "\r\n"
        "Who wrote the piece on the Rustaveli theatre?\r\n"
    ).encode()


def suppressed(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Suppression.email)))


def inbound_rows(db: Database) -> list[tuple[str, str | None, str, int | None]]:
    """(channel, recipient, meaning, delivery id) of every stored inbound message."""
    with db.session() as session:
        rows = session.execute(
            select(
                InboundMessage.channel,
                InboundMessage.recipient,
                InboundMessage.meaning,
                InboundMessage.delivery_id,
            ).order_by(InboundMessage.id)
        ).all()
    return [(channel, rcpt, meaning.value, delivery) for channel, rcpt, meaning, delivery in rows]
