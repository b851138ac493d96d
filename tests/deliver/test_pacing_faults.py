"""The pacer when things go wrong, on both databases and a real SMTP server: a database
that fails while a send time is reserved sends the job back (an outcome written, its domain
slot given back) instead of killing the connection's loop; a paced job is checked again
after its wait; slow-down replies log no reply text; what the pacer keeps per key goes
with the key; a reply's stage, as the transport names it, says whom it speaks for."""

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from tests.deliver.sendpool import Pool, claimed_jobs
from tests.smtpserver import RecordingHandler, smtp_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import DeliveryState, EditionStatus, SendLimit, SendLimitScope, SendLimitSlot
from tidings.deliver import limitadmin
from tidings.deliver.limitkeys import Key, relay_name
from tidings.deliver.pacing import Pacer
from tidings.deliver.worker import relay_key
from tidings.mail.transport import DeliveryError, TransientDeliveryError
from tidings.metrics import RATE_LIMIT_WAITS

LEASE = timedelta(seconds=30)
DOMAIN = "example.ge"  # every reader of tests.builders.subscribers


@pytest.fixture
def relay(settings: Settings) -> Iterator[tuple[RecordingHandler, Settings, Key]]:
    with smtp_server() as (handler, port):
        relayed = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        yield handler, relayed, Key(SendLimitScope.relay, relay_name("127.0.0.1", port))


@contextmanager
def _send_limits_read_only(db: Database, db_name: str) -> Iterator[None]:
    """Every UPDATE of ``send_limits`` fails in the database (a reservation does); reading
    it and taking a connection slot still work."""
    if db_name == "postgresql":
        made = [
            "CREATE FUNCTION refuse_limits_update() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'send_limits is read-only'; END $$",
            "CREATE TRIGGER refuse_limits_update BEFORE UPDATE ON send_limits "
            "FOR EACH ROW EXECUTE FUNCTION refuse_limits_update()",
        ]
        gone = [
            "DROP TRIGGER refuse_limits_update ON send_limits",
            "DROP FUNCTION refuse_limits_update()",
        ]
    else:
        made = [
            "CREATE TRIGGER refuse_limits_update BEFORE UPDATE ON send_limits "
            "BEGIN SELECT RAISE(ABORT, 'send_limits is read-only'); END"
        ]
        gone = ["DROP TRIGGER refuse_limits_update"]
    with db.engine.begin() as connection:
        for statement in made:
            connection.execute(text(statement))
    try:
        yield
    finally:
        with db.engine.begin() as connection:
            for statement in gone:
                connection.execute(text(statement))


def _slots(db: Database) -> list[SendLimitSlot]:
    with db.session() as session:
        return list(session.scalars(select(SendLimitSlot)))


def test_a_failed_reservation_sends_the_job_back_and_gives_its_slot_back(
    db: Database,
    db_name: str,
    relay: tuple[RecordingHandler, Settings, Key],
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, settings, relay_key = relay
    _edition_id, jobs = claimed_jobs(db, settings, readers=2)
    limitadmin.set_limit(db, "domain", DOMAIN, per_second=10.0, connections=2)
    pacer = Pacer(db, "w", relay_key, LEASE)
    asyncio.run(pacer.refresh(force=True))  # as a worker does when it starts
    pool = Pool(settings, jobs, pacer=pacer)
    with _send_limits_read_only(db, db_name):
        outcomes = pool.run()
    why = f"waiting: {DOMAIN} has no send time: the sending limits did not answer"
    assert [(o.state, o.reply, o.counted) for o in outcomes] == [
        (DeliveryState.queued, f"{why} (not an attempt)", False)
    ] * 2
    assert all(o.next_attempt_at is not None and o.next_attempt_at > o.at for o in outcomes)
    assert handler.recipients() == []
    assert _slots(db) == []  # each domain slot taken was given back
    assert "cannot reserve domain send times" in caplog.text
    assert "@" not in caplog.text


def test_a_relay_whose_limits_are_gone_sends_the_job_back(
    db: Database, relay: tuple[RecordingHandler, Settings, Key], caplog: pytest.LogCaptureFixture
) -> None:
    handler, settings, relay_key = relay
    _edition_id, jobs = claimed_jobs(db, settings, readers=2)
    limitadmin.set_limit(db, "relay", relay_key.name, per_second=50.0, connections=None)
    pacer = Pacer(db, "w", relay_key, LEASE)
    asyncio.run(pacer.refresh(force=True))  # the relay's rate is known, then the table goes
    with db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE send_limits RENAME TO send_limits_away"))
    try:
        outcomes = Pool(settings, jobs, pacer=pacer).run()
    finally:
        with db.engine.begin() as connection:
            connection.execute(text("ALTER TABLE send_limits_away RENAME TO send_limits"))
    reply = "waiting: the relay has no send time: the sending limits did not answer"
    assert [(o.state, o.reply) for o in outcomes] == [
        (DeliveryState.queued, f"{reply} (not an attempt)")
    ] * 2
    assert handler.recipients() == []
    assert "cannot reserve relay send times" in caplog.text


def test_a_job_that_waited_for_the_relay_is_checked_again(
    db: Database, relay: tuple[RecordingHandler, Settings, Key]
) -> None:
    """The edition is paused while a job waits for the relay's rate: it is not sent."""
    handler, settings, relay_key = relay
    edition_id, jobs = claimed_jobs(db, settings, readers=2)
    # One a second: of two jobs taken at once, one goes now and the other waits.
    limitadmin.set_limit(db, "relay", relay_key.name, per_second=1.0, connections=None)
    pacer = Pacer(db, "w", relay_key, LEASE)
    asyncio.run(pacer.refresh(force=True))
    pool = Pool(settings, jobs, pacer=pacer)
    waits = RATE_LIMIT_WAITS.labels("relay")
    before = waits._value.get()

    async def pause_while_one_waits() -> None:
        while waits._value.get() == before:
            await asyncio.sleep(0.01)
        pool.stopped[edition_id] = EditionStatus.paused

    outcomes = pool.run(meanwhile=pause_while_one_waits)
    assert sorted((o.state, o.reply) for o in outcomes) == [
        (DeliveryState.queued, "not sent: edition paused"),
        (DeliveryState.sent, "2.0.0 Ok: queued"),
    ]
    assert len(handler.recipients()) == 1


def test_a_slow_down_logs_no_reply_text(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    """The reply often repeats the reader's address, and a hostile relay may put line
    breaks in it: the log gets its code and enhanced status only."""
    relay_key = Key(SendLimitScope.relay, "smtp.example.ge:587")
    pacer = Pacer(db, "w", relay_key, LEASE)
    hostile = "4.7.1 <nino@busy.example> rate limited\r\nX-Forged: yes\n451 4.7.1 again"

    async def hear() -> None:
        assert pacer.heard("nino@busy.example", DeliveryError(451, hostile, "rcpt")) is not None
        await pacer.close()

    with caplog.at_level(logging.INFO, logger="tidings.deliver.pacing"):
        asyncio.run(hear())
    said = [record.getMessage() for record in caplog.records]
    assert said == ["domain busy.example asked to slow down (451 4.7.1): 1 messages/s"]
    assert not any("@" in line or "\r" in line or "\n" in line for line in said)
    with db.session() as session:  # the address is not kept in the limit's row either
        row = session.get(SendLimit, ("domain", "busy.example"))
        assert row is not None and row.last_reply is not None
        assert "nino" not in row.last_reply and "4.7.1" in row.last_reply


def test_what_the_pacer_keeps_per_key_goes_with_the_key(db: Database) -> None:
    """Learnt domains come and go: their reserved times, rates and locks go with them."""
    pacer = Pacer(db, "w", None, LEASE)
    domains = [f"busy{i}.example" for i in range(5)]
    for domain in domains:
        limitadmin.set_limit(db, "domain", domain, per_second=1000.0, connections=None)

    async def pace_each() -> None:
        await pacer.refresh(force=True)
        for domain in domains:
            assert (await pacer.pace(f"reader@{domain}")).later is None

    asyncio.run(pace_each())
    kept = [pacer._times, pacer._rates, pacer._locks]
    assert all(len(each) == len(domains) for each in kept)
    for domain in domains[1:]:
        assert limitadmin.clear_limit(db, "domain", domain)
    asyncio.run(pacer.refresh(force=True))
    gmail_like = Key(SendLimitScope.domain, domains[0])
    assert [set(each) for each in kept] == [{gmail_like}] * 3


@pytest.mark.parametrize(
    ("stage", "speaks_for"),
    [
        ("rcpt", "domain"),
        ("data", "domain"),
        ("mail", "relay"),
        ("connect", "relay"),
        (None, "relay"),
    ],
)
def test_a_replys_stage_says_whom_it_slows(
    db: Database, stage: str | None, speaks_for: str
) -> None:
    relay_key = Key(SendLimitScope.relay, "smtp.example.ge:587")
    pacer = Pacer(db, "w", relay_key, LEASE)
    reply = TransientDeliveryError(451, "4.7.1 try later", stage)  # type: ignore[arg-type]
    key = pacer.slow_down_key("reader@busy.example", reply)
    assert key is not None and key.scope.value == speaks_for


def test_the_relay_key_names_the_configured_server_or_the_catcher(settings: Settings) -> None:
    """The worker's relay key takes the transport's fall-back to the local catcher; naming
    a real server checks no links (it sends nothing)."""
    catcher = settings.model_copy(update={"smtp_url": ""})
    assert relay_key(catcher) == Key(SendLimitScope.relay, f"127.0.0.1:{settings.catcher_port}")
    real = settings.model_copy(
        update={
            "smtp_url": "smtp://Mail.Example.org:25",
            "base_url": "http://127.0.0.1:8000",
            "allow_insecure_links": False,
        }
    )
    assert relay_key(real) == Key(SendLimitScope.relay, "mail.example.org:25")
