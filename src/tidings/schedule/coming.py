"""A newsletter's coming sends: when each scheduled edition goes out, on whose clocks, and to
how many readers (for ``tidings schedule show`` and the console's newsletter page).

The send times come from the scheduler's own walk (:mod:`tidings.schedule.slots`): a
reader-time newsletter sends once per effective zone of its readers, and sends to zones
whose clocks agree on one instant are one line. The readers are counted by the fan-out's
own rule (:func:`tidings.deliver.ledger.recipient_counts`, every zone in one read), as
things stand now.
"""

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice, takewhile
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from tidings.catalog.newsletters import newsletter_by_slug
from tidings.compose.zones import reader_zones
from tidings.db.engine import Database
from tidings.db.models import Article, Cadence, Newsletter, Source
from tidings.deliver.ledger.fanout import recipient_counts
from tidings.errors import InvalidInput
from tidings.schedule.horizon import DAYS_AT_MOST
from tidings.schedule.horizon import DAYS_DEFAULT as DAYS_DEFAULT  # re-exported
from tidings.schedule.slots import newsletter_trigger, slot_times

#: At most this many lines: an every-minute schedule in many zones stays a bounded list.
SENDS_AT_MOST = 500
#: The sections an edition is counted as carrying: those of this past period's articles.
SECTIONS_SEEN = timedelta(days=7)


@dataclass(frozen=True)
class LocalTime:
    """A send's time on the clocks of one zone it serves."""

    zone: str
    at: datetime


@dataclass(frozen=True)
class ComingSend:
    """One coming send: its instant (UTC), its cadence, the zones it serves with their local
    time, and how many readers it would go to now."""

    at: datetime
    cadence: Cadence
    local: tuple[LocalTime, ...]
    readers: int

    @property
    def at_text(self) -> str:
        """The instant in ISO 8601 UTC: ``2026-12-01T03:00:00Z``."""
        return self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def local_text(self) -> str:
        """The local time(s) and zone(s): ``2026-12-01 07:00 Asia/Tbilisi, Asia/Dubai``."""
        by_time: dict[str, list[str]] = defaultdict(list)
        for local in self.local:
            by_time[local.at.strftime("%Y-%m-%d %H:%M")].append(local.zone)
        return "; ".join(f"{when} {', '.join(zones)}" for when, zones in by_time.items())


@dataclass(frozen=True)
class ComingSends:
    """The coming sends of ``slug`` over ``days`` days; ``more`` when the list was cut."""

    slug: str
    timezone: str
    reader_time: bool
    days: int
    sends: list[ComingSend]
    more: bool = False


def coming_sends(db: Database, slug: str, days: int, now: datetime) -> ComingSends:
    """The sends of the newsletter ``slug`` from ``now`` to ``days`` days later, earliest
    first (at most :data:`SENDS_AT_MOST`); ``days`` must be 1 to :data:`DAYS_AT_MOST`."""
    if not 1 <= days <= DAYS_AT_MOST:
        raise InvalidInput(f"days must be between 1 and {DAYS_AT_MOST}, not {days}.")
    end = now + timedelta(days=days)
    with db.session() as session:
        newsletter = newsletter_by_slug(session, slug)
        sections = _recent_sections(session, newsletter.id, now)
        found: list[tuple[datetime, Cadence, LocalTime, int]] = []
        for cadence, cron in _schedules(newsletter):
            found += _cadence_sends(session, newsletter, cadence, cron, sections, now, end)
    merged: dict[tuple[datetime, Cadence], list[tuple[LocalTime, int]]] = defaultdict(list)
    for at, cadence, local, readers in found:
        merged[(at, cadence)].append((local, readers))
    sends = [
        ComingSend(at, cadence, tuple(local for local, _ in parts), sum(n for _, n in parts))
        for (at, cadence), parts in sorted(merged.items(), key=lambda item: item[0][0])
    ]
    return ComingSends(
        newsletter.slug,
        newsletter.timezone,
        newsletter.reader_time,
        days,
        sends[:SENDS_AT_MOST],
        more=len(sends) > SENDS_AT_MOST,
    )


def _schedules(newsletter: Newsletter) -> list[tuple[Cadence, str]]:
    daily = [(Cadence.daily, newsletter.schedule_cron)]
    weekly = newsletter.weekly_schedule_cron
    return [*daily, (Cadence.weekly, weekly)] if weekly else daily


def _cadence_sends(
    session: Session,
    newsletter: Newsletter,
    cadence: Cadence,
    cron: str,
    sections: list[str],
    now: datetime,
    end: datetime,
) -> list[tuple[datetime, Cadence, LocalTime, int]]:
    """Each send of one cadence before ``end``, per zone served, with the zone's readers."""
    split = cadence if newsletter.offers_weekly else None
    served: list[tuple[str, ColumnElement[bool] | None]]
    if newsletter.reader_time:
        zones = reader_zones(session, newsletter, cadence)
        served = [(zone, zones.rule(zone)) for zone in zones.served()]
    else:
        served = [(newsletter.timezone, None)]
    triggers = []
    for zone, rule in served:
        try:
            triggers.append((zone, rule, newsletter_trigger(cron, zone)))
        except (ValueError, LookupError):
            continue  # an unusable schedule sends nothing (the scheduler reports it)
    rules = [rule for _, rule, _ in triggers]
    counts = recipient_counts(session, newsletter.id, sections, split, rules) if rules else []
    found = []
    for (zone, _, trigger), readers in zip(triggers, counts, strict=True):
        for run in _runs_before(slot_times(trigger, now), end):
            local = LocalTime(zone, run.astimezone(UTC).astimezone(ZoneInfo(zone)))
            found.append((run.astimezone(UTC), cadence, local, readers))
    return found


def _runs_before(runs: Iterator[datetime], end: datetime) -> Iterator[datetime]:
    """The runs before ``end``, at most one more than a list shows."""
    return islice(takewhile(lambda run: run < end, runs), SENDS_AT_MOST + 1)


def _recent_sections(session: Session, newsletter_id: int, now: datetime) -> list[str]:
    """The sections of the newsletter's articles of the past week: a coming edition is
    counted as carrying them, so readers who chose one of them are counted."""
    return sorted(
        section
        for section in session.scalars(
            select(Article.section)
            .distinct()
            .join(Source, Source.id == Article.source_id)
            .where(
                Source.newsletter_id == newsletter_id,
                Article.published_at > now - SECTIONS_SEEN,
                Article.section.is_not(None),
            )
        )
        if section
    )
