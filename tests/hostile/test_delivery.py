"""Hostile or broken relays against a real worker, on SQLite and PostgreSQL.

- a relay that answers ``550 5.1.1`` to everyone must pause the edition, not suppress the list;
- but once an editor resumes it, a small list of mostly dead addresses is not paused again;
- a relay that answers every command just inside the SMTP timeout must not hold a send (and a
  connection) for ever: a whole send has a deadline.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import func, select

from tests.builders import one_off_edition
from tests.smtpserver import RecordingHandler, free_port, smtp_server
from tidings.compose.lifecycle import resume_edition
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryState,
    Edition,
    EditionStatus,
    Subscriber,
    Suppression,
    SuppressionReason,
)
from tidings.deliver.runner import make_transports, run_worker
from tidings.deliver.worker import Worker, WorkerStats


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
    addresses = one_off_edition(db, settings, readers=150)
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
    addresses = one_off_edition(db, settings, readers=60)
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


def test_a_resume_after_a_mass_refusal_pause_ends_the_watch_for_good(
    db: Database, settings: Settings
) -> None:
    """A small edition where most addresses really are dead (21 of 30 answer ``550 5.1.1``)
    looks like a relay refusing everyone: it is paused. The editor looks and resumes: that
    means "the relay is fine", so the retried refusals fail and are suppressed, and the
    edition ends, instead of being paused again at every resume. A new worker sees it too:
    the resume is kept in the database, not in a worker's memory."""
    addresses = one_off_edition(db, settings, readers=30)
    alive = [a for i, a in enumerate(addresses) if i % 10 in (0, 5, 7)]
    dead = [a for a in addresses if a not in alive]
    assert (len(alive), len(dead)) == (9, 21)
    with smtp_server() as (handler, port):
        relay = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        for address in dead:
            handler.behaviour.rcpt_replies[address] = "550 5.1.1 No such user here"
        _drain(db, relay)
        with db.session() as session:
            edition = session.scalars(select(Edition)).one()
            assert session.scalar(select(func.count()).select_from(Suppression)) == 0
        assert edition.status == EditionStatus.paused
        assert edition.note is not None and "550 5.1.1" in edition.note
        assert DeliveryState.failed not in _states(db)
        at_resume = len(handler.commands)
        resume_edition(db, edition.id)
        with db.session() as session:  # kept for every worker, not in one's memory
            ended = session.scalars(select(Edition.refusal_watch_ended_at)).one()
        assert ended is not None and ended.tzinfo is not None
        _drain(db, relay)
        received = Counter(handler.recipients())
        asked_after = Counter(c.removeprefix("RCPT ") for c in handler.commands[at_resume:])
    assert _states(db) == {DeliveryState.sent: 9, DeliveryState.failed: 21}
    assert received == dict.fromkeys(alive, 1)
    # After the resume each dead address was tried once more, and only once.
    assert {a: asked_after[a] for a in dead} == dict.fromkeys(dead, 1)
    with db.session() as session:
        assert session.scalars(select(Edition.status)).one() == EditionStatus.sent
        suppressed = session.execute(select(Suppression.email, Suppression.reason)).all()
    assert sorted(suppressed) == sorted((a, SuppressionReason.hard_bounce) for a in dead)


def test_a_running_worker_sends_at_once_after_a_resume_that_follows_its_pause(
    db: Database, settings: Settings
) -> None:
    """A long-running worker that paused an edition itself must not go on believing it is
    paused once an editor resumed it: what it claims after the resume is sent, not handed
    back (each hand-back costs an attempt, and the backoff that follows from it)."""
    addresses = one_off_edition(db, settings, readers=30)
    dead = [a for i, a in enumerate(addresses) if i % 10 not in (0, 5, 7)]
    with smtp_server() as (handler, port):
        relay = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        for address in dead:
            handler.behaviour.rcpt_replies[address] = "550 5.1.1 No such user here"

        async def scenario() -> tuple[dict[str, int], int]:
            worker = Worker(db, relay, make_transports(relay))
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(drain=False, stop=stop))
            await _until(lambda: _status_and_open(db) == (EditionStatus.paused, 0))
            at_resume = _attempts(db), len(handler.commands)
            with db.session() as session:
                edition_id = session.scalars(select(Edition.id)).one()
            await asyncio.to_thread(resume_edition, db, edition_id)
            await _until(lambda: _status_and_open(db)[0] == EditionStatus.sent)
            stop.set()
            await task
            return at_resume

        attempts_at_resume, commands_at_resume = asyncio.run(scenario())
        asked_after = Counter(
            c.removeprefix("RCPT ") for c in handler.commands[commands_at_resume:]
        )
    attempts = _attempts(db)
    # Every claim after the resume reached the relay: no attempt was spent on a hand-back.
    spent = {a: attempts[a] - attempts_at_resume[a] for a in addresses}
    assert spent == {a: asked_after[a] for a in addresses}
    assert {a: spent[a] for a in dead} == dict.fromkeys(dead, 1)
    assert _states(db) == {DeliveryState.sent: 9, DeliveryState.failed: 21}


def _status_and_open(db: Database) -> tuple[EditionStatus, int]:
    """The edition's status, and how many of its deliveries are claimed (sending)."""
    with db.session() as session:
        status = session.scalars(select(Edition.status)).one()
        sending = session.scalar(
            select(func.count()).where(Delivery.state == DeliveryState.sending)
        )
    return status, int(sending or 0)


def _attempts(db: Database) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.attempts).join(
                Subscriber, Subscriber.id == Delivery.subscriber_id
            )
        )
        return {email: attempts for email, attempts in rows}


async def _until(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


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
    one_off_edition(db, settings, readers=1)
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
