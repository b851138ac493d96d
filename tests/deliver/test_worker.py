import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.builders import articles, newsletter, subscribers
from tests.smtpserver import RecordingHandler, free_port, smtp_server
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus, Suppression
from tidings.deliver.runner import run_worker
from tidings.deliver.worker import WorkerStats


@pytest.fixture
def smtp(settings: Settings) -> Iterator[tuple[RecordingHandler, Settings]]:
    with smtp_server() as (handler, port):
        yield handler, settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})


def _drain(db: Database, settings: Settings) -> WorkerStats:
    return asyncio.run(run_worker(db, settings, drain=True, stop=asyncio.Event()))


def _edition(db: Database, settings: Settings, readers: int = 5) -> list[str]:
    newsletter(db)
    articles(db, "daily", 3, datetime.now(UTC) - timedelta(hours=3))
    addresses = subscribers(db, "daily", readers)
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    return addresses


def _states(db: Database) -> dict[str, tuple[DeliveryState, int, str | None]]:
    with db.session() as session:
        rows = session.execute(
            select(Delivery.message_id, Delivery.state, Delivery.attempts, Delivery.last_reply)
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}


def test_every_subscriber_gets_exactly_one_message(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    addresses = _edition(db, settings, readers=25)
    stats = _drain(db, settings)
    assert stats.sent == 25
    assert sorted(handler.recipients()) == sorted(addresses)
    message_ids = {c.message["Message-ID"] for c in handler.caught}
    assert message_ids == set(_states(db))
    with db.session() as session:
        assert session.scalars(select(Edition.status)).one() == EditionStatus.sent
    first = handler.caught[0].message
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first["To"].endswith(f"<{handler.caught[0].rcpt_tos[0]}>")


def test_4xx_defers_with_backoff_then_retries_with_the_same_message_id(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    addresses = _edition(db, settings, readers=3)
    handler.behaviour.rcpt_replies[addresses[0]] = "451 4.7.1 Greylisted, try again later"
    before = datetime.now(UTC)
    stats = _drain(db, settings)
    assert (stats.sent, stats.deferred) == (2, 1)
    with db.session() as session:
        deferred = session.scalars(
            select(Delivery).where(Delivery.state == DeliveryState.deferred)
        ).one()
        assert deferred.last_reply_code == 451
        wait = deferred.next_attempt_at - before
        assert timedelta(minutes=4, seconds=50) < wait < timedelta(minutes=6)
        # time passes: make it due, and the server accepts now
        session.execute(update(Delivery).values(next_attempt_at=datetime.now(UTC)))
        session.commit()
        expected_id = deferred.message_id
    handler.behaviour.rcpt_replies.clear()
    assert _drain(db, settings).sent == 1
    retried = [c for c in handler.caught if c.rcpt_tos == [addresses[0]]]
    assert len(retried) == 1 and retried[0].message["Message-ID"] == expected_id
    assert _states(db)[expected_id][:2] == (DeliveryState.sent, 2)


def test_550_5_1_1_fails_and_suppresses_and_other_5xx_only_fails(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    addresses = _edition(db, settings, readers=3)
    handler.behaviour.rcpt_replies[addresses[0]] = "550 5.1.1 No such user here"
    handler.behaviour.rcpt_replies[addresses[1]] = "554 5.7.1 Rejected for policy reasons"
    stats = _drain(db, settings)
    assert (stats.sent, stats.failed) == (1, 2)
    with db.session() as session:
        assert session.scalars(select(Suppression.email)).all() == [addresses[0]]
        assert session.scalars(select(Edition.status)).one() == EditionStatus.sent


def test_drop_after_data_is_retried_by_default(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    _edition(db, settings, readers=2)
    handler.behaviour.drop_after_data = True
    stats = _drain(db, settings)
    assert stats.deferred == 2
    assert all(state == DeliveryState.deferred for state, _, _ in _states(db).values())


def test_drop_after_data_is_uncertain_with_at_most_once(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    _edition(db, settings, readers=2)
    handler.behaviour.drop_after_data = True
    stats = _drain(db, settings.model_copy(update={"at_most_once": True}))
    assert stats.uncertain == 2
    assert {state for state, _, _ in _states(db).values()} == {DeliveryState.uncertain}


def test_a_missing_smtp_server_defers_and_never_fails_the_edition(
    db: Database, settings: Settings
) -> None:
    nowhere = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{free_port()}"})
    _edition(db, nowhere, readers=3)
    stats = _drain(db, nowhere)
    assert stats.deferred == 3 and stats.failed == 0
    with db.session() as session:
        assert session.scalars(select(Edition.status)).one() == EditionStatus.sending
    assert all("cannot connect" in (reply or "") for _, _, reply in _states(db).values())


def test_a_stalled_server_times_out_and_defers(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    _edition(db, settings, readers=1)
    handler.behaviour.stall_seconds = 3
    stats = _drain(db, settings.model_copy(update={"smtp_timeout_seconds": 0.5}))
    assert stats.deferred == 1


def test_unsubscribed_during_a_send_are_skipped(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    from tidings.audience.service import unsubscribe
    from tidings.db.models import Subscription

    handler, settings = smtp
    addresses = _edition(db, settings, readers=3)
    with db.session() as session:
        first = session.scalars(select(Subscription.id).order_by(Subscription.id)).first()
    assert first is not None
    unsubscribe(db, first)
    stats = _drain(db, settings)
    assert stats.sent == 2
    assert addresses[0] not in handler.recipients()


def test_deferrals_give_up_after_the_give_up_time(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    addresses = _edition(db, settings, readers=2)
    handler.behaviour.rcpt_replies[addresses[0]] = "421 4.3.2 Service shutting down"
    with db.session() as session:  # queued six days ago
        session.execute(update(Delivery).values(created_at=datetime.now(UTC) - timedelta(days=6)))
        session.commit()
    stats = _drain(db, settings)
    assert (stats.sent, stats.failed, stats.deferred) == (1, 1, 0)
    failed = [r for s, _, r in _states(db).values() if s == DeliveryState.failed]
    assert failed and failed[0] is not None and failed[0].startswith("gave up after 1 attempts")


def test_a_delivery_deferred_many_times_is_deferred_again_at_the_longest_wait(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    """Five days of hourly retries are about a hundred attempts: the doubling wait must stop
    at the maximum, not overflow (which killed a sending connection's task and left the
    delivery leased, unsent, for as long as the worker lived)."""
    handler, settings = smtp
    addresses = _edition(db, settings, readers=2)
    handler.behaviour.rcpt_replies[addresses[0]] = "451 4.7.1 Greylisted, try again later"
    with db.session() as session:  # tried 99 times over about four days
        session.execute(
            update(Delivery).values(attempts=99, created_at=datetime.now(UTC) - timedelta(days=4))
        )
        session.commit()
    before = datetime.now(UTC)
    stats = asyncio.run(asyncio.wait_for(_drain_async(db, settings), 30))
    assert (stats.sent, stats.deferred) == (1, 1)
    with db.session() as session:
        deferred = session.scalars(
            select(Delivery).where(Delivery.state == DeliveryState.deferred)
        ).one()
        assert deferred.attempts == 100
        wait = deferred.next_attempt_at - before
        longest = timedelta(seconds=settings.retry_max_seconds)
        assert longest - timedelta(seconds=10) < wait < longest + timedelta(seconds=10)


async def _drain_async(db: Database, settings: Settings) -> WorkerStats:
    return await run_worker(db, settings, drain=True, stop=asyncio.Event())
