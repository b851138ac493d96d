"""Sending at each reader's own time: one edition per (slot, zone), on both databases.

The scheduler is driven tick by tick over the DST weekends of 2026 (Europe 03-29 and 10-25,
the US 03-08 and 11-01) with readers in Berlin, New York, Kolkata (+5:30), Kathmandu (+5:45),
the newsletter's own zone, no zone and an invalid one; every reader must get exactly one copy
on each local day, every article once, nothing twice.
"""

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.builders import articles, newsletter, subscribers
from tests.conftest import Cli
from tidings.audience.service import add_subscriber
from tidings.compose.archive import archive, archive_html
from tidings.compose.zones import ReaderZones, is_zone, reader_zones
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Article,
    Delivery,
    Edition,
    EditionArticle,
    EditionStatus,
    Newsletter,
    Subscriber,
)
from tidings.deliver.ledger.fanout import recipient_count
from tidings.errors import InvalidInput
from tidings.metrics import SCHEDULER_SLOTS
from tidings.paths import templates_dir
from tidings.schedule.coming import coming_sends
from tidings.schedule.scheduler import READER_TIME_JOB, TidingsScheduler
from tidings.schedule.slots import (
    ZONES_KEPT,
    ZoneMemory,
    newsletter_trigger,
    serve_due_slots,
    slot_times,
)

HOME = "Asia/Tbilisi"
#: Each reader's own zone (None: none given) and the zone they read in.
READERS = {
    "berlin@example.ge": ("Europe/Berlin", "Europe/Berlin"),
    "newyork@example.ge": ("America/New_York", "America/New_York"),
    "kolkata@example.ge": ("Asia/Kolkata", "Asia/Kolkata"),
    "kathmandu@example.ge": ("Asia/Kathmandu", "Asia/Kathmandu"),
    "tbilisi@example.ge": (HOME, HOME),
    "nozone@example.ge": (None, HOME),
    "mars@example.ge": ("Mars/Olympus_Mons", HOME),
}


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _runs(cron: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    runs = []
    for run in slot_times(newsletter_trigger(cron, zone), start):
        if run >= end:
            break
        runs.append(run.astimezone(UTC))
    return runs


@pytest.mark.parametrize(
    ("cron", "zone", "day", "expected"),
    [
        # The clocks go back: 02:30 is shown twice (CEST, then CET); it runs at the first.
        ("30 2 * * *", "Europe/Berlin", date(2026, 10, 25), [_utc(2026, 10, 25, 0, 30)]),
        # The clocks go forward: 02:30 does not exist; it runs once, an hour late (03:30).
        ("30 2 * * *", "Europe/Berlin", date(2026, 3, 29), [_utc(2026, 3, 29, 1, 30)]),
        ("30 2 * * *", "America/New_York", date(2026, 3, 8), [_utc(2026, 3, 8, 7, 30)]),
        ("30 2 * * *", "America/New_York", date(2026, 11, 1), [_utc(2026, 11, 1, 7, 30)]),
        # New York repeats 01:00-02:00 on 11-01: 01:30 EDT runs, 01:30 EST does not.
        ("30 1 * * *", "America/New_York", date(2026, 11, 1), [_utc(2026, 11, 1, 5, 30)]),
        ("0 7 * * *", "Europe/Berlin", date(2026, 10, 25), [_utc(2026, 10, 25, 6, 0)]),
        ("0 7 * * *", "Asia/Kolkata", date(2026, 10, 25), [_utc(2026, 10, 25, 1, 30)]),
        ("0 7 * * *", "Asia/Kathmandu", date(2026, 10, 25), [_utc(2026, 10, 25, 1, 15)]),
    ],
)
def test_one_run_per_local_day_on_dst_days(
    cron: str, zone: str, day: date, expected: list[datetime]
) -> None:
    tz = ZoneInfo(zone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz).astimezone(UTC)
    assert _runs(cron, zone, start, end) == expected


def test_is_zone_judges_names_by_zoneinfo() -> None:
    assert is_zone("Asia/Kathmandu") and is_zone("UTC")
    for bad in ("", "Mars/Olympus_Mons", "America", "../../etc/passwd", "asia/tbilisi "):
        assert not is_zone(bad)


def _reader_time_newsletter(db: Database, cron: str) -> int:
    newsletter_id = newsletter(db, schedule=cron, timezone=HOME, max_articles=100)
    with db.session() as session:
        session.get_one(Newsletter, newsletter_id).reader_time = True
        session.commit()
    return newsletter_id


def _add_readers(db: Database, readers: dict[str, tuple[str | None, str]]) -> None:
    """Subscribe the readers, then set their zones as stored (an invalid one included: an
    import or an old row may hold one; the sign-up path would refuse it)."""
    for address in readers:
        add_subscriber(db, "daily", address, None, confirmed=True, source="test")
    with db.session() as session:
        for subscriber in session.scalars(select(Subscriber)):
            subscriber.timezone = readers[subscriber.email][0]
        session.commit()


def test_reader_zones_split_valid_and_invalid(db: Database) -> None:
    _reader_time_newsletter(db, "0 7 * * *")
    _add_readers(db, READERS)
    with db.session() as session:
        nl = session.scalars(select(Newsletter)).one()
        zones = reader_zones(session, nl)
        assert zones.invalid == ("Mars/Olympus_Mons",)
        assert zones.served() == [
            HOME,
            "America/New_York",
            "Asia/Kathmandu",
            "Asia/Kolkata",
            "Europe/Berlin",
        ]
        counts = {
            z: recipient_count(session, nl.id, (), None, zones.rule(z)) for z in zones.served()
        }
    expected = Counter(zone for _, zone in READERS.values())
    assert counts == dict(expected)
    assert sum(counts.values()) == len(READERS)  # each reader in exactly one zone


def test_the_home_zone_is_served_without_readers_there() -> None:
    """Its edition is the one the public archive lists (and the welcome links)."""
    zones = ReaderZones(HOME, frozenset({"Asia/Kolkata"}), ())
    assert zones.served() == [HOME, "Asia/Kolkata"]


def _tick(db: Database, settings: Settings, start: datetime, end: datetime) -> None:
    """The scheduler's every-minute job, every 15 minutes (every zone's offset is a multiple
    of 15 minutes, so every slot falls on a tick)."""
    tick = start
    while tick <= end:
        serve_due_slots(db, settings, tick)
        tick += timedelta(minutes=15)


@dataclass(frozen=True)
class Copy:
    """One edition as a reader got it."""

    zone: str
    slot: datetime
    articles: list[int]


def _received(db: Database) -> dict[str, list[Copy]]:
    """Each reader's editions, by slot, with the article ids each carried."""
    with db.session() as session:
        carried: dict[int, list[int]] = defaultdict(list)
        for edition_id, article_id in session.execute(
            select(EditionArticle.edition_id, EditionArticle.article_id)
        ):
            carried[edition_id].append(article_id)
        got: dict[str, list[Copy]] = defaultdict(list)
        rows = session.execute(
            select(Subscriber.email, Edition.id, Edition.zone, Edition.slot)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .join(Edition, Edition.id == Delivery.edition_id)
            .order_by(Edition.slot)
        )
        for email, edition_id, zone, slot in rows:
            got[email].append(Copy(zone, slot, carried[edition_id]))
        return got


@pytest.mark.parametrize(
    ("cron", "weekend"),
    [
        ("0 7 * * *", date(2026, 10, 24)),  # Europe falls back on Sunday 10-25
        ("30 2 * * *", date(2026, 10, 24)),
        ("30 2 * * *", date(2026, 3, 28)),  # Europe springs forward on Sunday 03-29
        ("30 2 * * *", date(2026, 3, 7)),  # the US springs forward on Sunday 03-08
        ("30 1 * * *", date(2026, 10, 31)),  # the US falls back on Sunday 11-01
    ],
)
def test_every_reader_gets_one_copy_a_day_and_every_article_once(
    db: Database, settings: Settings, cron: str, weekend: date
) -> None:
    _reader_time_newsletter(db, cron)
    _add_readers(db, READERS)
    start = datetime(weekend.year, weekend.month, weekend.day, tzinfo=UTC) - timedelta(hours=12)
    end = start + timedelta(days=3, hours=12)
    # One article an hour, from a day before the first send to after the last.
    hourly = articles(
        db,
        "daily",
        110,
        start - timedelta(days=1),
        step=timedelta(hours=1),
        seen=start - timedelta(days=2),
    )
    assert len(hourly) == 110
    _tick(db, settings.model_copy(update={"schedule_grace_hours": 1}), start, end)

    received = _received(db)
    assert set(received) == set(READERS)
    with db.session() as session:
        published = dict(session.execute(select(Edition.id, Edition.status)).all())
        assert set(published.values()) == {EditionStatus.sending}
    for email, (_, zone) in READERS.items():
        editions = received[email]
        assert {copy.zone for copy in editions} == {zone}, email
        # One copy on every local day the ticks fully covered, and no day with two.
        days = Counter(copy.slot.astimezone(ZoneInfo(zone)).date() for copy in editions)
        assert max(days.values()) == 1, (email, days)
        first_day = (start + timedelta(days=1)).astimezone(ZoneInfo(zone)).date()
        for offset in range(3):
            assert days[first_day + timedelta(days=offset)] == 1, (email, days)
        # Every article once: the editions tile time with no gap and no repeat.
        ids = [article for copy in editions for article in copy.articles]
        assert len(ids) == len(set(ids)), email
        first_slot, last_slot = editions[0].slot, editions[-1].slot
        with db.session() as session:
            expected = set(
                session.scalars(
                    select(Article.id).where(
                        Article.published_at > first_slot - timedelta(hours=24),
                        Article.published_at <= last_slot,
                    )
                )
            )
        assert set(ids) == expected, email


def test_each_zone_sends_at_its_own_seven_oclock(db: Database, settings: Settings) -> None:
    _reader_time_newsletter(db, "0 7 * * *")
    _add_readers(db, READERS)
    slot_day = _utc(2026, 12, 1)
    articles(db, "daily", 30, slot_day - timedelta(hours=20), step=timedelta(hours=1))
    _tick(
        db,
        settings.model_copy(update={"schedule_grace_hours": 1}),
        slot_day,
        slot_day + timedelta(hours=24),
    )
    with db.session() as session:
        slots = dict(session.execute(select(Edition.zone, Edition.slot)).all())
    assert slots == {
        HOME: _utc(2026, 12, 1, 3, 0),
        "Asia/Kathmandu": _utc(2026, 12, 1, 1, 15),
        "Asia/Kolkata": _utc(2026, 12, 1, 1, 30),
        "Europe/Berlin": _utc(2026, 12, 1, 6, 0),
        "America/New_York": _utc(2026, 12, 1, 12, 0),
    }


def test_a_newsletter_for_everyone_keeps_one_edition_per_slot(
    db: Database, settings: Settings
) -> None:
    newsletter(db, schedule="0 7 * * *", timezone=HOME)
    _add_readers(db, READERS)
    slot = _utc(2026, 12, 1, 3, 0)
    articles(db, "daily", 3, slot - timedelta(hours=5))
    before = _slots_counted()
    outcomes = serve_due_slots(db, settings, slot)
    assert [(o.zone, o.result.deliveries) for o in outcomes] == [("", len(READERS))]
    serve_due_slots(db, settings, slot + timedelta(minutes=1))  # the same slot again
    with db.session() as session:
        assert session.scalars(select(Edition.zone)).all() == [""]
    counted = _slots_counted()
    assert counted["created"] - before["created"] == 1
    assert counted["existing"] - before["existing"] == 1


def _slots_counted() -> dict[str, float]:
    """The scheduler's slot counter, by outcome."""
    return {
        sample.labels["outcome"]: sample.value
        for metric in SCHEDULER_SLOTS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }


def test_a_reader_who_moves_gets_the_new_zones_next_edition(
    db: Database, settings: Settings
) -> None:
    """A reader in Berlin who moves to Kolkata after Berlin's send gets Kolkata's next edition
    (one copy a day), whose articles start at Kolkata's previous cutoff: the hours between
    that cutoff and Berlin's come again (see ARCHITECTURE.md)."""
    _reader_time_newsletter(db, "0 7 * * *")
    _add_readers(db, {k: READERS[k] for k in ("berlin@example.ge", "kolkata@example.ge")})
    day = _utc(2026, 12, 1)
    articles(db, "daily", 60, day - timedelta(hours=24), step=timedelta(hours=1), seen=day)
    grace = settings.model_copy(update={"schedule_grace_hours": 1})
    _tick(db, grace, day, day + timedelta(hours=8))  # Kolkata 01:30Z, Berlin 06:00Z
    with db.session() as session:
        mover = session.scalars(
            select(Subscriber).where(Subscriber.email == "berlin@example.ge")
        ).one()
        mover.timezone = "Asia/Kolkata"
        session.commit()
    _tick(db, grace, day + timedelta(hours=8), day + timedelta(days=1, hours=8))
    editions = _received(db)["berlin@example.ge"]
    assert [(copy.zone, copy.slot) for copy in editions] == [
        ("Europe/Berlin", _utc(2026, 12, 1, 6, 0)),
        ("Asia/Kolkata", _utc(2026, 12, 2, 1, 30)),
    ]
    first, second = (copy.articles for copy in editions)
    with db.session() as session:
        between = set(
            session.scalars(
                select(Article.id).where(
                    Article.published_at > _utc(2026, 12, 1, 1, 30),
                    Article.published_at <= _utc(2026, 12, 1, 6, 0),
                )
            )
        )
    assert len(between) == 5
    assert set(first) & set(second) == between  # the documented repeat, and nothing else


def test_coming_sends_one_line_per_instant(db: Database) -> None:
    _reader_time_newsletter(db, "0 7 * * *")
    _add_readers(db, READERS)
    coming = coming_sends(db, "daily", 1, _utc(2026, 12, 1, 0, 0))
    lines = [(s.at_text, s.local_text, s.readers) for s in coming.sends]
    assert lines == [
        ("2026-12-01T01:15:00Z", "2026-12-01 07:00 Asia/Kathmandu", 1),
        ("2026-12-01T01:30:00Z", "2026-12-01 07:00 Asia/Kolkata", 1),
        ("2026-12-01T03:00:00Z", f"2026-12-01 07:00 {HOME}", 3),
        ("2026-12-01T06:00:00Z", "2026-12-01 07:00 Europe/Berlin", 1),
        ("2026-12-01T12:00:00Z", "2026-12-01 07:00 America/New_York", 1),
    ]
    for days in (0, 63):
        with pytest.raises(InvalidInput):
            coming_sends(db, "daily", days, _utc(2026, 12, 1))


def test_coming_sends_of_a_newsletter_for_everyone(db: Database) -> None:
    newsletter(db, schedule="0 7 * * 1", timezone=HOME)
    subscribers(db, "daily", 2)
    coming = coming_sends(db, "daily", 14, _utc(2026, 12, 1))  # a Tuesday
    assert [(s.at_text, s.local_text, s.readers) for s in coming.sends] == [
        ("2026-12-07T03:00:00Z", f"2026-12-07 07:00 {HOME}", 2),
        ("2026-12-14T03:00:00Z", f"2026-12-14 07:00 {HOME}", 2),
    ]


def test_schedule_show_prints_the_coming_sends(db: Database, cli: Cli) -> None:
    _reader_time_newsletter(db, "0 7 * * *")
    _add_readers(db, READERS)
    result = cli("schedule", "show", "daily", "--days", "2")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "at each reader's local time" in lines[0]
    assert len(lines) == 11  # a heading, then five zones a day for two days
    assert any(
        line.endswith("07:00 Asia/Kathmandu  1 reader") and line[:20].endswith("T01:15:00Z")
        for line in lines
    )
    refused = cli("schedule", "show", "daily", "--days", "100")
    assert refused.exit_code == 1 and "between 1 and 62" in refused.stderr


def test_the_scheduler_serves_reader_time_every_minute(db: Database, settings: Settings) -> None:
    everyone = newsletter(db, "everyone", schedule="0 7 * * *")
    reader_time = _reader_time_newsletter(db, "0 7 * * *")
    scheduler = TidingsScheduler(db, settings)
    asyncio.run(scheduler.refresh_jobs())
    jobs = {job.id: job for job in scheduler.scheduler.get_jobs()}
    assert set(jobs) == {f"newsletter-{everyone}-daily", READER_TIME_JOB}
    assert f"newsletter-{reader_time}-daily" not in jobs
    assert str(jobs[READER_TIME_JOB].trigger.fields[6]) == "*"  # every minute


def test_the_scheduler_rereads_the_zones_every_few_minutes(
    db: Database, settings: Settings
) -> None:
    """The every-minute job keeps the zones it read for ZONES_KEPT: a reader's new zone is
    served once they are read again, at that zone's slot (still within the grace period)."""
    _reader_time_newsletter(db, "0 7 * * *")
    _add_readers(db, {"kolkata@example.ge": READERS["kolkata@example.ge"]})
    berlin_slot = _utc(2026, 12, 1, 6, 0)
    articles(db, "daily", 30, berlin_slot - timedelta(hours=20), step=timedelta(hours=1))
    memory = ZoneMemory()
    read_at = berlin_slot - timedelta(minutes=1)
    first = serve_due_slots(db, settings, read_at, memory)
    # The home zone's edition (no reader there: the archive's copy) and Kolkata's.
    assert {o.zone: o.result.deliveries for o in first} == {HOME: 0, "Asia/Kolkata": 1}
    add_subscriber(db, "daily", "berlin@example.ge", None, confirmed=True, source="test")
    with db.session() as session:
        session.scalars(
            select(Subscriber).where(Subscriber.email == "berlin@example.ge")
        ).one().timezone = "Europe/Berlin"
        session.commit()
    kept = serve_due_slots(db, settings, berlin_slot, memory)
    assert kept == []  # the zones as read a minute ago: Kolkata (served), not yet Berlin
    later = serve_due_slots(db, settings, read_at + ZONES_KEPT, memory)
    # Kolkata's slot was served through this memory already: not asked about again.
    assert [(o.zone, o.slot, o.result.created) for o in later] == [
        ("Europe/Berlin", berlin_slot, True)
    ]
    assert later[0].result.deliveries == 1
    assert serve_due_slots(db, settings, read_at + ZONES_KEPT, memory) == []


def test_turning_reader_time_on_goes_on_from_the_last_edition_for_everyone(
    db: Database, settings: Settings
) -> None:
    newsletter_id = newsletter(db, schedule="0 7 * * *", timezone=HOME, max_articles=100)
    _add_readers(db, {k: READERS[k] for k in ("berlin@example.ge", "nozone@example.ge")})
    day = _utc(2026, 12, 1)
    articles(db, "daily", 60, day - timedelta(hours=24), step=timedelta(hours=1), seen=day)
    grace = settings.model_copy(update={"schedule_grace_hours": 1})
    _tick(db, grace, day, day + timedelta(hours=4))  # 03:00Z: one edition for everyone
    with db.session() as session:
        session.get_one(Newsletter, newsletter_id).reader_time = True
        session.commit()
    _tick(db, grace, day + timedelta(hours=4), day + timedelta(days=1, hours=8))
    for email in ("berlin@example.ge", "nozone@example.ge"):
        copies = _received(db)[email]
        zone = READERS[email][1]
        expected = ["", zone] if zone == HOME else ["", zone, zone]  # Berlin's 06:00Z twice
        assert [copy.zone for copy in copies] == expected, (email, copies)
        ids = [article for copy in copies for article in copy.articles]
        assert len(ids) == len(set(ids)), email  # nothing the edition for everyone carried


def test_one_zone_failing_leaves_the_others_going(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """A template that breaks for Kolkata's edition only: Kolkata's slot is recorded as
    failed (once, with the reason), Berlin's and the newsletter's zone's go out."""
    own = tmp_path / "templates" / "email" / "digest"
    own.mkdir(parents=True)
    shipped = (templates_dir() / "email" / "digest" / "subject.txt").read_text()
    broken = '{% if edition.zone == "Asia/Kolkata" %}{{ no_such_function() }}{% endif %}'
    (own / "subject.txt").write_text(broken + shipped)
    settings = settings.model_copy(
        update={"templates_dir": tmp_path / "templates", "schedule_grace_hours": 1}
    )
    _reader_time_newsletter(db, "0 7 * * *")
    chosen = ("kolkata@example.ge", "berlin@example.ge", "nozone@example.ge")
    _add_readers(db, {k: READERS[k] for k in chosen})
    day = _utc(2026, 12, 1)
    articles(db, "daily", 30, day - timedelta(hours=20), step=timedelta(hours=1))
    _tick(db, settings, day, day + timedelta(hours=8))
    with db.session() as session:
        editions = {e.zone: e for e in session.scalars(select(Edition))}
    assert set(editions) == {"Asia/Kolkata", "Europe/Berlin", HOME}
    assert editions["Asia/Kolkata"].status == EditionStatus.failed
    assert "no_such_function" in (editions["Asia/Kolkata"].note or "")
    assert editions["Europe/Berlin"].status == EditionStatus.sending
    assert editions[HOME].status == EditionStatus.sending
    received = _received(db)
    assert "kolkata@example.ge" not in received
    assert [copy.zone for copy in received["berlin@example.ge"]] == ["Europe/Berlin"]


def test_zones_that_agree_on_an_instant_share_a_line(db: Database) -> None:
    _reader_time_newsletter(db, "0 7,8 * * *")
    readers = {
        "paris@example.ge": ("Europe/Paris", "Europe/Paris"),
        "berlin@example.ge": ("Europe/Berlin", "Europe/Berlin"),
        "london@example.ge": ("Europe/London", "Europe/London"),
    }
    _add_readers(db, readers)
    coming = coming_sends(db, "daily", 1, _utc(2026, 12, 1))
    at_seven = [send for send in coming.sends if send.at_text == "2026-12-01T07:00:00Z"]
    # 08:00 in Paris and Berlin is 07:00 in London: one instant, one line, three readers.
    assert [(s.local_text, s.readers) for s in at_seven] == [
        ("2026-12-01 08:00 Europe/Berlin, Europe/Paris; 2026-12-01 07:00 Europe/London", 3)
    ]


def test_the_archive_lists_one_copy_per_slot(db: Database, settings: Settings) -> None:
    """Every zone's edition stays readable at its own address, but the archive, the front and
    the welcome list the newsletter's own zone's copy only (there even with no reader there)."""
    _reader_time_newsletter(db, "0 7 * * *")
    _add_readers(db, {k: READERS[k] for k in ("kolkata@example.ge", "berlin@example.ge")})
    day = _utc(2026, 12, 1)
    articles(db, "daily", 30, day - timedelta(hours=20), step=timedelta(hours=1))
    _tick(db, settings, day, day + timedelta(hours=8))
    with db.session() as session:
        zones = dict(session.execute(select(Edition.id, Edition.zone)).all())
    assert sorted(zones.values()) == sorted([HOME, "Asia/Kolkata", "Europe/Berlin"])
    listed = archive(db, settings, "daily")
    assert listed is not None
    assert [zones[entry.edition_id] for entry in listed.entries] == [HOME]
    for edition_id in zones:  # each zone's own copy is still there at its address
        assert archive_html(db, settings, "daily", edition_id) is not None
