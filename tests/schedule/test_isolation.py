"""One failure stays local in the scheduler: a newsletter's bad cadence slot, a scheduled
draft that cannot start, a schedule that cannot be read: each is recorded (or logged) once
where it happened, and everything else goes on. Bad states are real rows, not mocks."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from tests.builders import articles, newsletter, subscribers
from tidings.compose.oneoff import schedule_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Cadence,
    Delivery,
    DeliveryState,
    Edition,
    EditionStatus,
    Newsletter,
)
from tidings.schedule.scheduler import TidingsScheduler, ledger_upkeep
from tidings.schedule.slots import serve_due_slots

SLOT = datetime(2026, 6, 26, 4, 0, tzinfo=UTC)  # 08:00 in Tbilisi, a Friday


def _set(db: Database, slug: str, **values: object) -> None:
    with db.session() as session:
        session.execute(update(Newsletter).where(Newsletter.slug == slug).values(**values))
        session.commit()


def _editions(db: Database) -> list[tuple[str, Cadence, EditionStatus, str | None]]:
    with db.session() as session:
        rows = session.execute(
            select(Newsletter.slug, Edition.cadence, Edition.status, Edition.skip_reason)
            .join(Newsletter, Newsletter.id == Edition.newsletter_id)
            .order_by(Newsletter.slug, Edition.cadence)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def _broken_set(folder: Path) -> Path:
    broken = folder / "email" / "broken"
    broken.mkdir(parents=True)
    (broken / "subject.txt").write_text("{{ newsletter.name }}", encoding="utf-8")
    (broken / "body.html").write_text("{{ edition.no_such_field }}", encoding="utf-8")
    (broken / "body.txt").write_text("{{ newsletter.name }}", encoding="utf-8")
    return folder


def test_daily_and_weekly_slots_of_other_newsletters_go_on(
    db: Database, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = settings.model_copy(update={"templates_dir": _broken_set(tmp_path / "tpl")})
    for slug in ("bad", "good"):  # the bad one first: the old loop stopped there
        newsletter(db, slug)
        _set(db, slug, weekly_schedule_cron="0 8 * * 5")
        articles(db, slug, 2, SLOT - timedelta(hours=3), seen=SLOT - timedelta(hours=3))
        subscribers(db, slug, 1)
    _set(db, "bad", template_set="broken")
    caplog.set_level(logging.ERROR)
    for minutes in (0, 1, 2):
        serve_due_slots(db, live, SLOT + timedelta(minutes=minutes))
    assert _editions(db) == [
        ("bad", Cadence.daily, EditionStatus.failed, "template_error"),
        ("bad", Cadence.weekly, EditionStatus.failed, "template_error"),
        ("good", Cadence.daily, EditionStatus.sending, None),
        ("good", Cadence.weekly, EditionStatus.sending, None),
    ]
    assert len(caplog.records) == 2  # once per failed slot, not once per tick


def _break_fan_out(db: Database, slug: str) -> None:
    """A state the fan-out of ``slug``'s editions fails on, in each database: a sender
    domain too long for a Message-ID column (PostgreSQL checks lengths), or a reader's
    section choice that is not JSON (SQLite reads it with json_array_length)."""
    if db.engine.dialect.name == "postgresql":
        _set(db, slug, from_address="digest@" + "d" * 250 + ".ge")
        return
    with db.session() as session:
        newsletter_id = session.scalar(select(Newsletter.id).where(Newsletter.slug == slug))
        session.execute(
            text("UPDATE subscriptions SET sections = 'not json' WHERE newsletter_id = :n"),
            {"n": newsletter_id},
        )
        session.commit()


def _expired_delivery(db: Database, edition_id: int) -> int:
    with db.session() as session:
        delivery = session.scalars(select(Delivery).where(Delivery.edition_id == edition_id))
        row = delivery.first()
        assert row is not None
        row.state = DeliveryState.sending
        row.lease_owner = "a-worker-that-died"
        row.lease_expires_at = datetime.now(UTC) - timedelta(minutes=5)
        session.commit()
        return row.id


def test_a_draft_that_cannot_start_fails_once_and_upkeep_goes_on(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    drafts = {}
    for slug in ("bad", "good"):
        newsletter(db, slug)
        ids = articles(db, slug, 2, now - timedelta(hours=3), seen=now - timedelta(hours=3))
        subscribers(db, slug, 2)
        soon = now + timedelta(minutes=1)
        drafts[slug] = schedule_one_off(db, settings, slug, OneOff(article_ids=ids), soon)
    # An earlier edition whose worker died: upkeep must still take its lease back.
    ids = articles(db, "good", 1, now - timedelta(hours=2), seen=now - timedelta(hours=2))
    started = schedule_one_off(
        db, settings, "good", OneOff(article_ids=ids), now + timedelta(seconds=1)
    )
    with db.session() as session:
        session.get_one(Edition, started).scheduled_for = now - timedelta(minutes=5)
        session.commit()
    ledger_upkeep(db, settings)  # starts that one
    leased = _expired_delivery(db, started)
    _break_fan_out(db, "bad")
    with db.session() as session:
        for edition_id in drafts.values():
            session.get_one(Edition, edition_id).scheduled_for = now - timedelta(seconds=1)
        session.commit()

    caplog.set_level(logging.ERROR)
    for _ in range(3):  # three upkeep ticks
        assert ledger_upkeep(db, settings) == []
    with db.session() as session:
        bad = session.get_one(Edition, drafts["bad"])
        good = session.get_one(Edition, drafts["good"])
        assert (bad.status, bad.skip_reason) == (EditionStatus.failed, "start_error")
        assert bad.note is not None and bad.note.startswith("could not be started: ")
        assert good.status == EditionStatus.sending
        assert session.query(Delivery).filter(Delivery.edition_id == good.id).count() == 2
        assert session.query(Delivery).filter(Delivery.edition_id == bad.id).count() == 0
        assert session.get_one(Delivery, leased).state == DeliveryState.queued  # reclaimed
    assert len(caplog.records) == 1  # the failed draft, once


def test_an_unreadable_schedule_stops_no_other_newsletter(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    for slug in ("bad", "good"):
        newsletter(db, slug)
        articles(db, slug, 2, SLOT - timedelta(hours=3), seen=SLOT - timedelta(hours=3))
    _set(db, "bad", timezone="Mars/Olympus_Mons")  # left behind by a tzdata change, say
    outcomes = serve_due_slots(db, settings, SLOT + timedelta(minutes=1))
    assert [(o.slug, o.result.status) for o in outcomes] == [("good", EditionStatus.sending)]

    caplog.set_level(logging.ERROR)
    scheduler = TidingsScheduler(db, settings)

    async def refresh_twice() -> list[str]:
        await scheduler.refresh_jobs()
        await scheduler.refresh_jobs()  # nothing changed: nothing logged again
        return sorted(job.id for job in scheduler.scheduler.get_jobs())

    with db.session() as session:
        good_id = session.scalar(select(Newsletter.id).where(Newsletter.slug == "good"))
    assert asyncio.run(refresh_twice()) == [f"newsletter-{good_id}-daily"]
    assert len(caplog.records) == 1 and "Mars/Olympus_Mons" in caplog.records[0].getMessage()
