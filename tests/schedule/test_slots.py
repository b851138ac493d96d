import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.builders import articles, newsletter, subscribers
from tidings.config import Settings
from tidings.db.engine import Database, open_database
from tidings.db.models import Delivery, Edition
from tidings.schedule.lock import SchedulerLock
from tidings.schedule.scheduler import TidingsScheduler
from tidings.schedule.slots import latest_slot, newsletter_trigger, serve_due_slots


def test_latest_slot_in_the_newsletters_time_zone() -> None:
    trigger = newsletter_trigger("0 8 * * *", "Asia/Tbilisi")
    now = datetime(2026, 6, 26, 10, 0, tzinfo=UTC)  # 14:00 in Tbilisi
    slot = latest_slot(trigger, now, timedelta(hours=12))
    assert slot is not None and slot.astimezone(UTC) == datetime(2026, 6, 26, 4, 0, tzinfo=UTC)
    assert latest_slot(trigger, now, timedelta(hours=5)) is None  # outside the grace period


def test_a_slot_missed_while_down_is_served_once_within_grace(
    db: Database, settings: Settings
) -> None:
    newsletter(db, schedule="0 8 * * *", timezone="Asia/Tbilisi")
    slot = datetime(2026, 6, 26, 4, 0, tzinfo=UTC)
    articles(db, "daily", 2, slot - timedelta(hours=4), seen=slot - timedelta(hours=4))
    subscribers(db, "daily", 3)
    back_up = slot + timedelta(hours=3)  # the scheduler comes back three hours late
    first = serve_due_slots(db, settings, back_up)
    assert [(o.slot.astimezone(UTC), o.result.created) for o in first] == [(slot, True)]
    for later in (back_up, back_up + timedelta(minutes=5)):  # restarts, ticks, retries
        assert [o.result.created for o in serve_due_slots(db, settings, later)] == [False]
    with db.session() as session:
        assert session.query(Edition).count() == 1
        assert session.query(Delivery).count() == 3
    too_late = serve_due_slots(
        db,
        settings.model_copy(update={"schedule_grace_hours": 2}),
        slot + timedelta(days=1, hours=3),
    )
    assert too_late == []


def test_a_time_the_clocks_show_twice_sends_one_digest(db: Database, settings: Settings) -> None:
    """Berlin, 2026-10-25: 02:30 comes at 00:30 UTC (CEST) and again at 01:30 UTC (CET); a
    newsletter at 02:30 sends once that night, even with news between the two."""
    newsletter(db, schedule="30 2 * * *", timezone="Europe/Berlin")
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    articles(db, "daily", 2, first - timedelta(hours=3), seen=first - timedelta(hours=3))
    subscribers(db, "daily", 2)
    served = serve_due_slots(db, settings, first + timedelta(minutes=1))
    assert [(o.slot.astimezone(UTC), o.result.created) for o in served] == [(first, True)]
    articles(db, "daily", 2, first + timedelta(minutes=20), seen=first + timedelta(minutes=20))
    again = serve_due_slots(db, settings, first + timedelta(hours=1, minutes=1))  # 02:31 CET
    assert [(o.slot.astimezone(UTC), o.result.created) for o in again] == [(first, False)]
    with db.session() as session:
        assert session.query(Edition).count() == 1
        assert session.query(Delivery).count() == 2


def test_racing_schedulers_make_one_edition(db: Database, settings: Settings) -> None:
    newsletter(db, schedule="*/30 * * * *", timezone="UTC")
    now = datetime.now(UTC)
    articles(db, "daily", 2, now - timedelta(hours=2), seen=now - timedelta(hours=2))
    subscribers(db, "daily", 2)
    others = [open_database(settings.resolved_database_url) for _ in range(3)]

    async def race() -> None:
        await asyncio.gather(
            *(asyncio.to_thread(serve_due_slots, d, settings, now) for d in [db, *others])
        )

    asyncio.run(race())
    for other in others:
        other.dispose()
    with db.session() as session:
        assert len(session.scalars(select(Edition.id)).all()) == 1
        assert session.query(Delivery).count() == 2


def test_only_one_scheduler_holds_the_lock(db: Database, settings: Settings) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the advisory lock exists on PostgreSQL; SQLite is single-process")
    second_db = open_database(settings.resolved_database_url)
    first, second = SchedulerLock(db), SchedulerLock(second_db)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        first.release()
        assert second.try_acquire()
    finally:
        first.release()
        second.release()
        second_db.dispose()


def test_scheduler_start_catches_up_then_stops(db: Database, settings: Settings) -> None:
    newsletter(db, schedule="0 * * * *", timezone="UTC")  # hourly: the last top of the hour
    now = datetime.now(UTC)
    articles(db, "daily", 1, now - timedelta(hours=3), seen=now - timedelta(minutes=90))
    subscribers(db, "daily", 1)

    async def start_and_stop() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(TidingsScheduler(db, settings).run(stop))
        for _ in range(100):
            await asyncio.sleep(0.05)
            with db.session() as session:
                if session.query(Edition).count():
                    break
        stop.set()
        await asyncio.wait_for(running, timeout=10)

    asyncio.run(start_and_stop())
    with db.session() as session:
        edition = session.scalars(select(Edition)).one()
        assert edition.slot == now.replace(minute=0, second=0, microsecond=0)
