"""Hostile or broken relays against a real worker, on SQLite and PostgreSQL.

- a relay that answers ``550 5.1.1`` to everyone must pause the edition, not suppress the list;
- a relay that answers every command just inside the SMTP timeout must not hold a send (and a
  connection) for ever: a whole send has a deadline.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import func, select

from tests.builders import articles, newsletter, subscribers
from tests.smtpserver import RecordingHandler, free_port, smtp_server
from tidings.compose.lifecycle import resume_edition
from tidings.compose.service import OneOff, send_one_off
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus, Suppression
from tidings.deliver.runner import run_worker
from tidings.deliver.worker import WorkerStats


def _edition(db: Database, settings: Settings, readers: int) -> list[str]:
    newsletter(db)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    addresses = subscribers(db, "daily", readers)
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    return addresses


def _drain(db: Database, settings: Settings) -> WorkerStats:
    return asyncio.run(
        asyncio.wait_for(run_worker(db, settings, drain=True, stop=asyncio.Event()), 60)
    )


def _states(db: Database) -> Counter[DeliveryState]:
    with db.session() as session:
        return Counter(session.scalars(select(Delivery.state)).all())


def test_a_relay_refusing_everyone_pauses_the_edition_and_suppresses_no_one(
    db: Database, settings: Settings
) -> None:
    addresses = _edition(db, settings, readers=150)
    with smtp_server() as (handler, port):
        relay = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        for address in addresses:
            handler.behaviour.rcpt_replies[address] = "550 5.1.1 Recipient address rejected"
        _drain(db, relay)
        with db.session() as session:
            edition = session.scalars(select(Edition)).one()
            suppressed = session.scalar(select(func.count()).select_from(Suppression))
        assert edition.status == EditionStatus.paused
        assert edition.note is not None and "550 5.1.1" in edition.note
        assert suppressed == 0
        # Nothing failed for good: every delivery waits for the resume.
        assert _states(db) == {DeliveryState.queued: 150}
        # The relay is fixed; the editor resumes: everyone gets the edition, once.
        handler.behaviour.rcpt_replies.clear()
        resume_edition(db, edition.id)
        stats = _drain(db, relay)
        received = Counter(handler.recipients())
    assert stats.sent == 150
    assert set(received) == set(addresses) and max(received.values()) == 1
    assert _states(db) == {DeliveryState.sent: 150}
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0
        assert session.scalars(select(Edition.status)).one() == EditionStatus.sent


def test_a_few_dead_addresses_among_the_first_hundred_are_still_suppressed(
    db: Database, settings: Settings
) -> None:
    addresses = _edition(db, settings, readers=60)
    with smtp_server() as (handler, port):
        relay = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        dead = addresses[::10]  # 6 of 60
        for address in dead:
            handler.behaviour.rcpt_replies[address] = "550 5.1.1 No such user here"
        stats = _drain(db, relay)
    assert (stats.sent, stats.failed) == (54, 6)
    with db.session() as session:
        assert sorted(session.scalars(select(Suppression.email)).all()) == sorted(dead)
        assert session.scalars(select(Edition.status)).one() == EditionStatus.sent


class _SlowRelay(RecordingHandler):
    """Answers every command just inside the client's timeout: no single read times out."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.behaviour.stall_seconds = delay

    async def handle_EHLO(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        await asyncio.sleep(self.delay)
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        await asyncio.sleep(self.delay)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@contextmanager
def _slow_relay(delay: float) -> Iterator[tuple[_SlowRelay, int]]:
    handler = _SlowRelay(delay)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_a_relay_answering_just_inside_every_timeout_cannot_hold_a_send(
    db: Database, settings: Settings
) -> None:
    _edition(db, settings, readers=1)
    with _slow_relay(delay=0.45) as (_, port):
        relay = settings.model_copy(
            update={"smtp_url": f"smtp://127.0.0.1:{port}", "smtp_timeout_seconds": 0.5}
        )
        started = time.monotonic()
        stats = _drain(db, relay)
        took = time.monotonic() - started
    # Four answers of 0.45 s each: no read exceeds 0.5 s, but the send as a whole exceeds
    # its deadline (three timeouts) and is deferred as uncertain.
    assert stats.deferred == 1 and stats.sent == 0
    with db.session() as session:
        reply = session.scalars(select(Delivery.last_reply)).one()
    assert reply is not None and "no complete answer" in reply
    assert took < 30


def test_a_message_sent_at_once_has_the_same_deadline(settings: Settings) -> None:
    from tidings.mail.direct import send_now
    from tidings.mail.transport import DeliveryError

    with _slow_relay(delay=0.45) as (_, port):
        relay = settings.model_copy(
            update={"smtp_url": f"smtp://127.0.0.1:{port}", "smtp_timeout_seconds": 0.5}
        )
        started = time.monotonic()
        try:
            asyncio.run(send_now(relay, "news@example.ge", "reader@example.ge", b"Hi\r\n"))
        except DeliveryError as error:
            refused: DeliveryError | None = error
        else:
            refused = None
        took = time.monotonic() - started
    assert refused is not None and "no complete answer" in str(refused)
    assert took < 3
