"""Crontab lines as APScheduler triggers, with crontab's weekday numbers.

APScheduler 3 counts weekdays from Monday (0 = Monday) even in ``CronTrigger.from_crontab``,
while crontab counts from Sunday (0 or 7 = Sunday). "0 7 * * 1-5" would otherwise send on
Tuesday to Saturday. Numeric weekdays are therefore spelled out as names here, which mean
the same thing to both.

:func:`fire_times` is the one walk over a schedule's runs: the dashboard's next sends
(:func:`next_runs`) and the scheduler's due slot both take theirs from it.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from itertools import islice
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _days(item: str) -> list[str]:
    """One comma-separated item of a numeric weekday field, as day names."""
    spec, _, step_text = item.partition("/")
    step = int(step_text) if step_text else 1
    if step < 1:
        raise ValueError(f"bad step in day of week {item!r}")
    if spec == "*":
        first, last = 0, 6
    else:
        start, _, end = spec.partition("-")
        first = int(start)
        last = int(end) if end else (6 if step_text else first)
    if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last):
        raise ValueError(f"day of week {item!r} is not within 0-7")
    return [_NAMES[day % 7] for day in range(first, last + 1, step)]


def weekday_names(field: str) -> str:
    """A crontab day-of-week field with its numbers turned into names."""
    if field == "*":
        return field
    names: list[str] = []
    for item in field.split(","):
        if any(ch.isalpha() for ch in item):
            names.append(item.lower())  # names already mean the same to both
            continue
        names.extend(day for day in _days(item) if day not in names)
    return ",".join(names)


class DstSafeCronTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """APScheduler 3's CronTrigger, with a fix for the night the clocks go forward.

    To step to the next day it adds the day's wall-clock length in UTC, so from a time
    before the clocks go forward it lands an hour late: a midnight run (00:00 in Berlin on
    the day after 2026-03-29, 00:30 in Santiago on 2026-09-06) is passed, and a whole day
    is skipped, by its own jobs and by :func:`fire_times` alike. When the answer has another
    UTC offset than the start, it is asked again from each offset change in between (from
    there no change is crossed), and the earliest run wins: every answer is a run at or
    after the start, so the earliest is the next one. A run the gap itself swallows (the
    skipped hour starts at midnight) is looked for on the clocks of before the change.
    """

    def __init__(self, *, timezone: ZoneInfo, **fields: str) -> None:
        super().__init__(timezone=timezone, **fields)
        self._fields = fields

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        run: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        start = now.astimezone(UTC)
        if previous_fire_time is not None:
            start = min(start, previous_fire_time.astimezone(UTC) + timedelta(microseconds=1))
        start = start.astimezone(self.timezone)
        while run is not None and run.utcoffset() != start.utcoffset():
            change = _offset_change(start, run)
            skipped = self._in_gap(start, change)
            if skipped is not None and skipped < run:
                run = skipped
            start = change
            again: datetime | None = super().get_next_fire_time(None, start)
            if again is not None and again < run:
                run = again
        return run

    def _in_gap(self, start: datetime, change: datetime) -> datetime | None:
        """A run whose wall-clock time the clocks skip at ``change`` (a gap that starts at
        midnight, where the day's own step lands past it), at that time on the clocks of
        before the change: an hour late, as APScheduler runs 02:30 on a Berlin spring night."""
        before, after = start.utcoffset(), change.utcoffset()
        if before is None or after is None or after <= before:
            return None  # the clocks go back: no time is skipped
        fixed = CronTrigger(**self._fields, timezone=dt_timezone(before))
        run: datetime | None = fixed.get_next_fire_time(None, start)
        if run is None or not change <= run < change + (after - before):
            return None
        return run.astimezone(self.timezone)


def _offset_change(start: datetime, end: datetime) -> datetime:
    """The first whole second after ``start`` (and at most ``end``) whose UTC offset is not
    ``start``'s, in ``start``'s zone: a bisection, about 20 steps over two days."""
    low, high = start.astimezone(UTC), end.astimezone(UTC)
    offset = start.utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(start.tzinfo).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0).astimezone(start.tzinfo)


def crontab_trigger(cron: str, timezone: str) -> CronTrigger:
    """A trigger for a five-field crontab line in ``timezone``; ValueError if malformed."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"expected five fields, got {len(fields)}")
    minute, hour, day, month, day_of_week = fields
    return DstSafeCronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=weekday_names(day_of_week),
        timezone=ZoneInfo(timezone),
    )


def fire_times(trigger: CronTrigger, start: datetime) -> Iterator[datetime]:
    """The trigger's runs at or after ``start``, earliest first, in the trigger's time zone.

    Endless for any schedule that has a next run: the caller stops (``islice``, or a
    comparison with an end). Every run is a later instant than the one before. Around DST
    changes: a wall-clock time the clocks skip runs once, an hour late (02:30 on a spring-
    forward night in Berlin runs at 03:30 CEST); a wall-clock time the clocks repeat runs at
    both instants (02:30 CEST, then 02:30 CET), as APScheduler's own scheduler would fire it.

    The step to the next run is taken in UTC: one second added to a local time on the fall-
    back night loses ``fold`` and lands an hour *earlier*, and the walk would find the same
    run again forever.
    """
    previous: datetime | None = None
    now = start.astimezone(trigger.timezone)
    while (run := trigger.get_next_fire_time(previous, now)) is not None:
        yield run
        previous = run
        now = (run.astimezone(UTC) + timedelta(seconds=1)).astimezone(trigger.timezone)


def next_runs(cron: str, timezone: str, count: int, after: datetime) -> list[datetime]:
    """The next ``count`` runs of a crontab line after ``after``, in ``timezone``.

    ValueError for a malformed line, LookupError (ZoneInfoNotFoundError) for an unknown zone.
    """
    return list(islice(fire_times(crontab_trigger(cron, timezone), after), count))


_DAY_WORDS = {
    "sun": "Sunday",
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
}
_WEEK_ORDER = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _and_list(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _plain_number(text: str) -> bool:
    """ASCII digits only (str.isdigit holds for other scripts' digits too)."""
    return text.isascii() and text.isdigit()


def _clock_times(minute: str, hour: str) -> list[str] | None:
    """``HH:MM`` for each time of a plain minute and hour list, or None for steps and ranges."""
    if not _plain_number(minute) or not all(_plain_number(h) for h in hour.split(",")):
        return None
    hours = sorted({int(h) for h in hour.split(",")})
    if int(minute) > 59 or any(h > 23 for h in hours):
        return None
    return [f"{h:02d}:{int(minute):02d}" for h in hours]


def _days_in_words(field: str) -> str | None:
    """The days in words ("Every day", "Every weekday", "Every Monday and Thursday"); None
    when the field is not a plain list of weekdays."""
    if field == "*":
        return "Every day"
    try:
        names = weekday_names(field).split(",")
    except ValueError:
        return None
    if any(name not in _DAY_WORDS for name in names):
        return None
    days = [day for day in _WEEK_ORDER if day in names]
    if len(days) == 7:
        return "Every day"
    if days == list(_WEEK_ORDER[:5]):
        return "Every weekday"
    if days == ["sat", "sun"]:
        return "Every Saturday and Sunday"
    return "Every " + _and_list([_DAY_WORDS[day] for day in days])


#: The last day of the month that every month has: a later one is not "every month".
_EVERY_MONTH_HAS = 28


def _ordinal(day: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st, 22nd, 23rd."""
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _month_days_in_words(field: str) -> str | None:
    """A plain list of days of the month in words ("On the 1st and 15th of every month");
    None for ranges, steps or a day that some months lack (29th to 31st)."""
    items = field.split(",")
    if not all(item.isascii() and item.isdigit() for item in items):
        return None
    days = sorted({int(item) for item in items})
    if days[0] < 1 or days[-1] > _EVERY_MONTH_HAS:
        return None
    return f"On the {_and_list([_ordinal(day) for day in days])} of every month"


def schedule_in_words(cron: str, timezone: str, zone_words: str | None = None) -> str | None:
    """A crontab line in words for readers: "Every day at 07:00 (Asia/Tbilisi)", "Every
    Monday and Thursday at 08:30 and 18:30 (Europe/Berlin)", "On the 1st of every month at
    07:00 (Asia/Tbilisi)"; None for a line that says more than days of the week or of every
    month and clock times (show its next runs instead). A line with both a day of the month
    and a weekday is never put in words: crontab means either, the scheduler both.
    ``zone_words`` ("your time") takes the place of the zone's name in brackets."""
    fields = cron.split()
    if len(fields) != 5:
        return None
    minute, hour, day, month, day_of_week = fields
    if month != "*":
        return None
    if day == "*":
        days = _days_in_words(day_of_week)
    elif day_of_week == "*":
        days = _month_days_in_words(day)
    else:
        return None
    times = _clock_times(minute, hour)
    if times is None or days is None:
        return None
    return f"{days} at {_and_list(times)} " + (zone_words or f"({timezone})")
