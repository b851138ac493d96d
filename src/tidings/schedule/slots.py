"""Which scheduled slot is due for a newsletter, and serving it once.

Correctness never rests on the scheduler: serving a slot twice (two schedulers, a restart, a
retry) finds the existing edition through the (newsletter, cadence, slot, zone) constraint
and does nothing.

A reader-time newsletter is served once per effective zone of its readers: the slot of zone
Z is the crontab line's fire time on Z's clocks, and its edition goes to Z's readers only.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from tidings.catalog.newsletters import NewsletterSchedule, newsletter_schedules
from tidings.compose.service import ComposeResult, compose_scheduled
from tidings.compose.zones import reader_time_ids, served_zones
from tidings.config import Settings
from tidings.crontab import crontab_trigger, fire_times
from tidings.db.engine import Database
from tidings.db.models import Cadence, EditionStatus
from tidings.metrics import SCHEDULER_SLOTS

log = logging.getLogger(__name__)


def newsletter_trigger(cron: str, timezone: str) -> CronTrigger:
    """The newsletter's schedule, in its own time zone."""
    return crontab_trigger(cron, timezone)


def repeated_showing(run: datetime) -> bool:
    """True for the second showing of a wall-clock time the clocks show twice (02:30 CET on
    the night Berlin's clocks go back, after 02:30 CEST)."""
    first = run.replace(fold=0)
    if first.utcoffset() == run.replace(fold=1).utcoffset():
        return False  # an ordinary time: shown once
    return run.astimezone(UTC) > first.astimezone(UTC)


def slot_times(trigger: CronTrigger, start: datetime) -> Iterator[datetime]:
    """The slots of a newsletter's schedule: :func:`~tidings.crontab.fire_times`, except that
    a wall-clock time the clocks show twice runs once, at its first showing, so a reader gets
    one copy that day; a time the clocks skip runs once, an hour late (as fire_times does)."""
    return (run for run in fire_times(trigger, start) if not repeated_showing(run))


def latest_slot(trigger: CronTrigger, now: datetime, grace: timedelta) -> datetime | None:
    """The newest slot in (now - grace, now], or None if the schedule had none; a repeated
    wall-clock time counts once (:func:`slot_times`)."""
    latest = None
    for candidate in slot_times(trigger, now - grace):
        if candidate > now:
            break
        latest = candidate
    return latest


@dataclass(frozen=True)
class SlotOutcome:
    slug: str
    cadence: Cadence
    slot: datetime
    result: ComposeResult
    #: The readers' zone of a reader-time newsletter's slot ("" for every other).
    zone: str = ""


#: How long the scheduler keeps a reader-time newsletter's list of readers' zones: the
#: every-minute job then reads them (one DISTINCT over the readers) at most this often. A
#: reader's new zone is served this much later at worst, well within the grace period; who
#: gets an edition is always decided afresh by the fan-out.
ZONES_KEPT = timedelta(minutes=5)


class ZoneMemory:
    """The readers' zones of each reader-time schedule, as last read, for :data:`ZONES_KEPT`,
    and the last slot each zone was served (one per scheduler process; without one every
    tick reads the zones afresh and asks the compose service about every due slot).

    Remembering a served slot only saves asking again: the database's constraint, not this
    memory, is what keeps a slot to one edition.
    """

    def __init__(self, kept: timedelta = ZONES_KEPT) -> None:
        self.kept = kept
        self._zones: dict[tuple[int, Cadence], tuple[datetime, list[str]]] = {}
        self._served: dict[tuple[int, Cadence, str], datetime] = {}

    def served(self, due: NewsletterSchedule, zone: str, slot: datetime) -> bool:
        """Whether this process already saw ``slot`` of the schedule in ``zone`` served."""
        return self._served.get((due.newsletter_id, due.cadence, zone)) == slot

    def remember(self, due: NewsletterSchedule, zone: str, slot: datetime) -> None:
        self._served[(due.newsletter_id, due.cadence, zone)] = slot

    def zones(self, db: Database, due: NewsletterSchedule, now: datetime) -> list[str]:
        key = (due.newsletter_id, due.cadence)
        known = self._zones.get(key)
        if known is not None and now - self.kept < known[0] <= now:
            return known[1]
        zones = served_zones(db, due.newsletter_id, due.cadence) or []
        self._zones[key] = (now, zones)
        return zones


def serve_due_slots(
    db: Database, settings: Settings, now: datetime, memory: ZoneMemory | None = None
) -> list[SlotOutcome]:
    """Compose the newest slot of every newsletter and cadence that fell within the grace
    period, each on its own (a reader-time newsletter's in each of its readers' zones, as
    ``memory`` keeps them when given).

    Called on every cron fire and at start-up, so a slot missed while the scheduler was down
    is still served once when it comes back within the grace period. A slot that fails is
    recorded as a failed edition by the compose service (and so reported once); one that
    could not even be recorded (the database went away) is logged and tried on the next
    tick. Either way the other newsletters' slots go on.
    """
    outcomes: list[SlotOutcome] = []
    reader_time = reader_time_ids(db)
    memory = memory or ZoneMemory(kept=timedelta(0))
    for due in newsletter_schedules(db):
        try:
            zones = memory.zones(db, due, now) if due.newsletter_id in reader_time else [""]
        except Exception:
            log.exception(
                "newsletter %s %s: its readers' zones were not read; trying again next tick",
                due.slug,
                due.cadence.value,
            )
            continue
        for zone in zones:
            try:
                outcome = _serve(db, settings, due, now, zone, memory)
            except Exception:
                log.exception(
                    "newsletter %s %s%s: the due slot was not served; trying again next tick",
                    due.slug,
                    due.cadence.value,
                    f" (readers in {zone})" if zone else "",
                )
                continue
            if outcome is not None:
                outcomes.append(outcome)
    return outcomes


def _serve(
    db: Database,
    settings: Settings,
    due: NewsletterSchedule,
    now: datetime,
    zone: str = "",
    memory: ZoneMemory | None = None,
) -> SlotOutcome | None:
    """Compose the schedule's newest slot within the grace period, if it has one (and
    ``memory`` has not seen it served): on the newsletter's clocks, or with ``zone`` on that
    readers' zone's clocks."""
    grace = timedelta(hours=settings.schedule_grace_hours)
    try:
        trigger = newsletter_trigger(due.cron, zone or due.timezone)
    except (ValueError, LookupError):  # reported once, when the scheduler builds its jobs
        log.debug("newsletter %s has no usable %s schedule", due.slug, due.cadence.value)
        return None
    slot = latest_slot(trigger, now, grace)
    if slot is None or (memory is not None and memory.served(due, zone, slot)):
        return None
    result = compose_scheduled(db, settings, due.newsletter_id, slot, due.cadence, zone)
    SCHEDULER_SLOTS.labels(outcome=_outcome(result)).inc()
    if memory is not None:
        memory.remember(due, zone, slot)
    if result.created and result.status != EditionStatus.failed:  # failures: logged by compose
        log.info(
            "newsletter %s %s slot %s%s: %s",
            due.slug,
            due.cadence.value,
            slot.isoformat(),
            f" (readers in {zone})" if zone else "",
            _summary(result),
            extra={"newsletter": due.slug, "edition": result.edition_id, "slot": slot},
        )
    return SlotOutcome(due.slug, due.cadence, slot, result, zone)


def _outcome(result: ComposeResult) -> str:
    """The slot's outcome as the metrics count it."""
    if not result.created:
        return "existing"
    if result.status == EditionStatus.failed:
        return "failed"
    return "skipped" if result.status == EditionStatus.skipped else "created"


def _summary(result: ComposeResult) -> str:
    if result.skip_reason is not None:
        return f"skipped ({result.skip_reason})"
    done = f"{result.articles} article(s), {result.deliveries} deliveries queued"
    return f"{done}; {result.note}" if result.note else done
