"""Crontab lines: weekday numbers mean what they mean in crontab (0 and 7 are Sunday), and
the walk over a schedule's runs (``fire_times``, ``next_runs``) across DST changes and in a
zone 45 minutes off the hour."""

import threading
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from tidings.crontab import crontab_trigger, fire_times, next_runs, weekday_names
from tidings.schedule.slots import latest_slot

MONDAY = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def _weekdays(cron: str, count: int = 7) -> list[str]:
    return [slot.strftime("%a") for slot in next_runs(cron, "Asia/Tbilisi", count, MONDAY)]


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 7 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri", "Mon", "Tue"]),
        ("0 7 * * 0", ["Sun"] * 7),
        ("0 7 * * 7", ["Sun"] * 7),
        ("0 9 * * 6", ["Sat"] * 7),
        ("0 7 * * 1,3,5", ["Mon", "Wed", "Fri", "Mon", "Wed", "Fri", "Mon"]),
        ("0 7 * * */2", ["Tue", "Thu", "Sat", "Sun", "Tue", "Thu", "Sat"]),
        ("0 7 * * MON-FRI", ["Mon", "Tue", "Wed", "Thu", "Fri", "Mon", "Tue"]),
        ("0 7 * * *", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
    ],
)
def test_weekdays_follow_crontab(cron: str, expected: list[str]) -> None:
    assert _weekdays(cron) == expected


def test_numbers_become_names() -> None:
    assert weekday_names("0,6-7") == "sun,sat"
    assert weekday_names("1-5/2") == "mon,wed,fri"


@pytest.mark.parametrize(
    "cron", ["0 7 * * 8", "0 7 * * 5-1", "0 7 * *", "0 7 * * 1/0", "x 7 * * *"]
)
def test_malformed_lines_are_refused(cron: str) -> None:
    with pytest.raises(ValueError):
        crontab_trigger(cron, "UTC")


def _utc(cron: str, timezone: str, count: int, after: datetime) -> list[str]:
    return [
        r.astimezone(UTC).strftime("%m-%d %H:%M") for r in next_runs(cron, timezone, count, after)
    ]


def _local(cron: str, timezone: str, count: int, after: datetime) -> list[str]:
    zone = ZoneInfo(timezone)
    return [
        r.astimezone(UTC).astimezone(zone).strftime("%m-%d %H:%M %Z")
        for r in next_runs(cron, timezone, count, after)
    ]


def test_berlin_spring_forward_runs_a_skipped_time_once_an_hour_late() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist that night.
    after = datetime(2026, 3, 27, 12, tzinfo=UTC)
    assert _local("30 2 * * *", "Europe/Berlin", 4, after) == [
        "03-28 02:30 CET",
        "03-29 03:30 CEST",
        "03-30 02:30 CEST",
        "03-31 02:30 CEST",
    ]
    assert _local("0 8 * * *", "Europe/Berlin", 3, after) == [
        "03-28 08:00 CET",
        "03-29 08:00 CEST",
        "03-30 08:00 CEST",
    ]
    # Hourly: the hour that does not exist is simply not there; no gap, no repeat.
    assert _utc("0 * * * *", "Europe/Berlin", 4, datetime(2026, 3, 28, 23, 10, tzinfo=UTC)) == [
        "03-29 00:00",
        "03-29 01:00",
        "03-29 02:00",
        "03-29 03:00",
    ]


def test_berlin_fall_back_runs_a_repeated_time_at_both_instants_then_moves_on() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice.
    after = datetime(2026, 10, 23, 12, tzinfo=UTC)
    assert _local("30 2 * * *", "Europe/Berlin", 4, after) == [
        "10-24 02:30 CEST",
        "10-25 02:30 CEST",
        "10-25 02:30 CET",
        "10-26 02:30 CET",
    ]
    assert _utc("0 * * * *", "Europe/Berlin", 4, datetime(2026, 10, 24, 23, 10, tzinfo=UTC)) == [
        "10-25 00:00",
        "10-25 01:00",
        "10-25 02:00",
        "10-25 03:00",
    ]


def test_new_york_dst_days() -> None:
    # 2026-03-08: 02:00 EST becomes 03:00 EDT.
    assert _local("30 2 * * *", "America/New_York", 3, datetime(2026, 3, 6, 12, tzinfo=UTC)) == [
        "03-07 02:30 EST",
        "03-08 03:30 EDT",
        "03-09 02:30 EDT",
    ]
    # 2026-11-01: 02:00 EDT becomes 01:00 EST, so 01:00 and 01:30 happen twice.
    after = datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert _local("*/30 1 * * *", "America/New_York", 6, after) == [
        "11-01 01:00 EDT",
        "11-01 01:30 EDT",
        "11-01 01:00 EST",
        "11-01 01:30 EST",
        "11-02 01:00 EST",
        "11-02 01:30 EST",
    ]


def test_zones_45_minutes_off_the_hour() -> None:
    after = datetime(2026, 3, 27, 12, tzinfo=UTC)
    assert _utc("0 7 * * *", "Asia/Kathmandu", 2, after) == ["03-28 01:15", "03-29 01:15"]
    assert _utc("15 * * * *", "Asia/Kathmandu", 2, after) == ["03-27 12:30", "03-27 13:30"]
    # Chatham: +13:45 until 2026-04-05 03:45, then +12:45 (03:00 happens twice that night).
    chatham = datetime(2026, 4, 3, 12, tzinfo=UTC)
    assert _utc("0 7 * * *", "Pacific/Chatham", 3, chatham) == [
        "04-03 17:15",
        "04-04 18:15",
        "04-05 18:15",
    ]
    fall_back_day = datetime(2026, 4, 4, tzinfo=UTC)  # 13:45 local on the 4th
    assert _utc("0 3 * * *", "Pacific/Chatham", 3, fall_back_day) == [
        "04-04 13:15",
        "04-04 14:15",
        "04-05 14:15",
    ]


@pytest.mark.parametrize("timezone", ["Europe/Berlin", "America/New_York", "Pacific/Chatham"])
@pytest.mark.parametrize("cron", ["30 2 * * *", "0 * * * *", "*/20 1-3 * * *", "45 1 * * 0"])
def test_every_run_is_later_than_the_one_before(cron: str, timezone: str) -> None:
    runs = list(
        islice(fire_times(crontab_trigger(cron, timezone), datetime(2026, 1, 1, tzinfo=UTC)), 2000)
    )
    instants = [r.astimezone(UTC) for r in runs]
    assert len(instants) == 2000
    assert all(a < b for a, b in pairwise(instants))


def test_the_due_slot_on_a_fall_back_night_is_found() -> None:
    """The scheduler's walk over the grace window ends (it once went round the repeated 02:30
    forever, and the scheduler with it)."""
    trigger = crontab_trigger("30 2 * * *", "Europe/Berlin")
    found: list[datetime | None] = []
    now = datetime(2026, 10, 25, 2, 0, tzinfo=UTC)  # 03:00 CET, after both 02:30s
    walk = threading.Thread(
        target=lambda: found.append(latest_slot(trigger, now, timedelta(hours=6))), daemon=True
    )
    walk.start()
    walk.join(timeout=10)
    assert found, "latest_slot did not return"
    (slot,) = found
    # 02:30 CEST (00:30 UTC): the second showing, 02:30 CET, is no slot of its own, so readers
    # get one digest that night.
    assert slot is not None and slot.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_next_runs_refuses_a_bad_line_or_zone() -> None:
    after = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        next_runs("0 7 * *", "UTC", 1, after)
    with pytest.raises(ZoneInfoNotFoundError):
        next_runs("0 7 * * *", "Mars/Olympus_Mons", 1, after)
