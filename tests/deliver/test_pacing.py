"""Workers under the shared sending limits, against the real aiosmtpd server: "slow down"
replies lower the rates they speak for while every message still goes exactly once; a
domain over its rate has its jobs sent back queued (no attempt counted) without holding up
other domains; a relay's connection limit holds across workers. Counts and states only."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import select, update

from tests.builders import articles, newsletter
from tests.crowdedsmtp import crowded_server
from tests.deliver.ledgerrows import DOMAIN
from tests.smtpserver import RecordingHandler, free_port
from tidings.audience.service import add_subscriber
from tidings.compose.oneoff import schedule_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryState,
    Edition,
    EditionStatus,
    SendLimit,
    SendLimitScope,
    SendLimitSlot,
    Subscriber,
)
from tidings.deliver import ledger, limitadmin, limitkeys, limits, limitslots
from tidings.deliver.runner import connector, make_transports
from tidings.deliver.worker import Worker, WorkerStats
from tidings.metrics import SLOW_DOWNS


def _sending_to(db: Database, settings: Settings, addresses: list[str]) -> int:
    """A sending edition with one queued delivery per address; its id."""
    newsletter_id = newsletter(db, "daily")
    ids = articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=3))
    for i, address in enumerate(addresses):
        add_subscriber(db, "daily", address, f"Reader {i}", confirmed=True, source="test")
    soon = datetime.now(UTC) + timedelta(hours=1)
    edition_id = schedule_one_off(db, settings, "daily", OneOff(article_ids=ids), soon)
    with db.session() as session:
        session.execute(
            update(Edition).where(Edition.id == edition_id).values(status=EditionStatus.sending)
        )
        ledger.fan_out(session, edition_id, newsletter_id, DOMAIN, datetime.now(UTC))
        session.commit()
    return edition_id


def _relay(settings: Settings, port: int, pool: int = 2, most: int = 2) -> Settings:
    return settings.model_copy(
        update={
            "smtp_url": f"smtp://127.0.0.1:{port}",
            "smtp_pool_size": pool,
            "smtp_max_connections": most,
        }
    )


def _drain(db: Database, settings: Settings, workers: int = 1) -> list[WorkerStats]:
    """Run ``workers`` draining workers side by side until nothing is due."""

    async def run() -> list[WorkerStats]:
        made = [
            Worker(db, settings, make_transports(settings), connect=connector(settings))
            for _ in range(workers)
        ]
        stop = asyncio.Event()
        return list(await asyncio.gather(*(w.run(drain=True, stop=stop) for w in made)))

    return asyncio.run(run())


def _deliveries(db: Database, edition_id: int) -> dict[str, tuple[DeliveryState, int, Any]]:
    """Each delivery's (state, attempts, next attempt) by address."""
    with db.session() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.state, Delivery.attempts, Delivery.next_attempt_at)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.edition_id == edition_id)
        ).all()
    return {email: (state, attempts, at) for email, state, attempts, at in rows}


def _make_due(db: Database, edition_id: int) -> int:
    """Bring every waiting delivery's time forward to now (the test does not wait for the
    retry schedule); how many."""
    with db.session() as session:
        result = session.execute(
            update(Delivery)
            .where(
                Delivery.edition_id == edition_id,
                Delivery.state.in_([DeliveryState.deferred, DeliveryState.queued]),
            )
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()
        return int(getattr(result, "rowcount", 0))


def _limit(db: Database, scope: str, name: str) -> SendLimit | None:
    with db.session() as session:
        return session.get(SendLimit, (scope, name))


class SlowingHandler(RecordingHandler):
    """Answers "421 4.7.0 slow down" to the MAIL commands numbered in ``mail_refusals``,
    and "451 4.7.1 rate limited" after DATA the first time it sees an address at
    ``busy_domain``."""

    def __init__(self, mail_refusals: set[int], busy_domain: str) -> None:
        super().__init__()
        self.mail_refusals = mail_refusals
        self.busy_domain = busy_domain
        self.mails = 0
        self.refused: set[str] = set()

    async def handle_MAIL(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        with self.lock:
            self.mails += 1
            number = self.mails
        if number in self.mail_refusals:
            return "421 4.7.0 slow down, too many messages"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        busy = [r for r in envelope.rcpt_tos if r.endswith("@" + self.busy_domain)]
        with self.lock:
            first = [r for r in busy if r not in self.refused]
            self.refused.update(first)
        if first:
            return "451 4.7.1 rate limited, try again later"
        return await super().handle_DATA(server, session, envelope)


@contextmanager
def slowing_server(handler: RecordingHandler) -> Iterator[int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def test_slow_down_replies_lower_the_rates_and_every_message_goes_once(
    db: Database, settings: Settings
) -> None:
    busy = [f"reader{i}@busy.example" for i in range(8)]
    calm = [f"reader{i}@calm.example" for i in range(24)]
    edition_id = _sending_to(db, settings, busy + calm)
    handler = SlowingHandler(mail_refusals={20, 30}, busy_domain="busy.example")
    relay_before = SLOW_DOWNS.labels("relay")._value.get()
    domain_before = SLOW_DOWNS.labels("domain")._value.get()
    with slowing_server(handler) as port:
        relay = _relay(settings, port)
        rounds = 0
        while rounds < 6:
            _drain(db, relay)
            rounds += 1
            if not _make_due(db, edition_id):
                break
        relay_name = limitkeys.relay_name("127.0.0.1", port)
    # Exactly once each, and all sent, the deferred ones on a later round.
    assert sorted(handler.recipients()) == sorted(busy + calm)
    rows = _deliveries(db, edition_id)
    assert {state for state, _, _ in rows.values()} == {DeliveryState.sent}
    assert all(rows[a][1] >= 2 for a in busy)  # deferred by the 4.7.1, then sent
    # The MAIL-stage 421s slowed the relay; the DATA-stage 4.7.1s slowed busy.example only.
    relay_row = _limit(db, "relay", relay_name)
    assert relay_row is not None and relay_row.rate is not None
    assert relay_row.slow_downs == 2 and relay_row.per_second is None
    assert relay_row.last_reply is not None and "4.7.0 slow down" in relay_row.last_reply
    busy_row = _limit(db, "domain", "busy.example")
    assert busy_row is not None and busy_row.rate is not None
    assert busy_row.slow_downs == len(busy)
    assert busy_row.rate >= limits.FLOOR_PER_SECOND
    assert _limit(db, "domain", "calm.example") is None
    assert SLOW_DOWNS.labels("relay")._value.get() - relay_before == 2
    assert SLOW_DOWNS.labels("domain")._value.get() - domain_before == len(busy)


def test_a_domain_over_its_rate_waits_in_the_queue_without_holding_others_up(
    db: Database, settings: Settings
) -> None:
    slow = [f"reader{i}@slow.example" for i in range(5)]
    fast = [f"reader{i}@fast.example" for i in range(20)]
    edition_id = _sending_to(db, settings, slow + fast)
    # One message every five seconds for slow.example: the first goes, the rest come back.
    limitadmin.set_limit(db, "domain", "slow.example", per_second=0.2, connections=None)
    handler = RecordingHandler()
    with slowing_server(handler) as port:
        relay = _relay(settings, port)
        started = datetime.now(UTC)
        _drain(db, relay)
        first_round = _deliveries(db, edition_id)
        # Every fast.example job went in the first round, each in one attempt.
        assert all(first_round[a][:2] == (DeliveryState.sent, 1) for a in fast)
        sent_slow = [a for a in slow if first_round[a][0] == DeliveryState.sent]
        waiting = [a for a in slow if first_round[a][0] == DeliveryState.queued]
        assert sent_slow and waiting and len(sent_slow) + len(waiting) == len(slow)
        for address in waiting:
            _, attempts, next_at = first_round[address]
            assert attempts == 0  # handed back unsent: no attempt counted
            assert next_at.replace(tzinfo=UTC) > started
        with db.session() as session:
            replies = session.scalars(
                select(Delivery.last_reply).where(Delivery.state == DeliveryState.queued)
            ).all()
        assert replies and all("slow.example is at its sending rate" in r for r in replies)
        # Lift the limit: the rest go, each exactly once, in one attempt.
        assert limitadmin.clear_limit(db, "domain", "slow.example")
        _make_due(db, edition_id)
        _drain(db, relay)
    rows = _deliveries(db, edition_id)
    assert {(state, attempts) for state, attempts, _ in rows.values()} == {(DeliveryState.sent, 1)}
    assert sorted(handler.recipients()) == sorted(slow + fast)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_relays_connection_limit_holds_across_workers(
    db: Database, settings: Settings, db_name: str, workers: int
) -> None:
    if workers > 1 and db_name != "postgresql":
        pytest.skip("several workers share a database on PostgreSQL")
    addresses = [f"reader{i}@example.ge" for i in range(60)]
    edition_id = _sending_to(db, settings, addresses)
    with crowded_server(limit=100) as (handler, crowd, port):
        handler.behaviour.stall_seconds = 0.01  # a relay far away: the pools want to grow
        limitadmin.set_limit(
            db, "relay", limitkeys.relay_name("127.0.0.1", port), per_second=None, connections=2
        )
        stats = _drain(db, _relay(settings, port, pool=3, most=8), workers=workers)
        peak = crowd.peak
    assert sum(s.sent for s in stats) == len(addresses)
    assert sorted(handler.recipients()) == sorted(addresses)
    assert {state for state, _, _ in _deliveries(db, edition_id).values()} == {DeliveryState.sent}
    assert peak <= 2  # never a third connection, whatever the pools wanted
    with db.session() as session:  # a clean stop gave every slot back
        assert session.scalars(select(SendLimitSlot)).all() == []


def test_a_domain_with_its_connections_busy_waits_in_the_queue(
    db: Database, settings: Settings
) -> None:
    few = [f"reader{i}@few.example" for i in range(4)]
    other = [f"reader{i}@other.example" for i in range(10)]
    edition_id = _sending_to(db, settings, few + other)
    limitadmin.set_limit(db, "domain", "few.example", per_second=None, connections=1)
    # A worker elsewhere holds few.example's one connection, under a live lease.
    key = limitkeys.Key(SendLimitScope.domain, "few.example")
    with db.session() as session:
        assert limitslots.take_slot(session, key, "elsewhere", timedelta(hours=1)) == 0
        session.commit()
    handler = RecordingHandler()
    with slowing_server(handler) as port:
        relay = _relay(settings, port)
        _drain(db, relay)
        first_round = _deliveries(db, edition_id)
        assert all(first_round[a][:2] == (DeliveryState.sent, 1) for a in other)
        assert all(first_round[a][:2] == (DeliveryState.queued, 0) for a in few)
        with db.session() as session:
            replies = set(
                session.scalars(
                    select(Delivery.last_reply).where(Delivery.state == DeliveryState.queued)
                )
            )
        assert replies == {
            "waiting: few.example has all 1 of its connections busy (not an attempt)"
        }
        # The other worker stops: its slot is free, and the rest go, each once (one at a
        # time: a job that finds the one connection busy comes back a little later).
        with db.session() as session:
            limitslots.release_holder(session, "elsewhere")
            session.commit()
        for _ in range(len(few)):
            if not _make_due(db, edition_id):
                break
            _drain(db, relay)
    rows = _deliveries(db, edition_id)
    assert {(state, attempts) for state, attempts, _ in rows.values()} == {(DeliveryState.sent, 1)}
    assert sorted(handler.recipients()) == sorted(few + other)
    with db.session() as session:  # every send gave its domain slot back
        assert session.scalars(select(SendLimitSlot)).all() == []
