"""Crontab weekday numbers mean what they mean in crontab (0 and 7 are Sunday)."""

from datetime import UTC, datetime

import pytest

from tidings.crontab import crontab_trigger, weekday_names
from tidings.reports.insights import next_sends

MONDAY = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def _weekdays(cron: str, count: int = 7) -> list[str]:
    return [slot.strftime("%a") for slot in next_sends(cron, "Asia/Tbilisi", count, MONDAY)]


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
