"""Crontab lines as APScheduler triggers, with crontab's weekday numbers.

APScheduler 3 counts weekdays from Monday (0 = Monday) even in ``CronTrigger.from_crontab``,
while crontab counts from Sunday (0 or 7 = Sunday). "0 7 * * 1-5" would otherwise send on
Tuesday to Saturday. Numeric weekdays are therefore spelled out as names here, which mean
the same thing to both.
"""

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


def crontab_trigger(cron: str, timezone: str) -> CronTrigger:
    """A trigger for a five-field crontab line in ``timezone``; ValueError if malformed."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"expected five fields, got {len(fields)}")
    minute, hour, day, month, day_of_week = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=weekday_names(day_of_week),
        timezone=ZoneInfo(timezone),
    )
