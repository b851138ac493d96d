"""Which scheduled slot is due for a newsletter, and serving it once.

Correctness never rests on the scheduler: serving a slot twice (two schedulers, a restart, a
retry) finds the existing edition through the (newsletter, slot) constraint and does nothing.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from tidings.catalog.newsletters import NewsletterSchedule, newsletter_schedules
from tidings.compose.service import ComposeResult, compose_scheduled
from tidings.config import Settings
from tidings.crontab import crontab_trigger, fire_times
from tidings.db.engine import Database
from tidings.db.models import Cadence, EditionStatus

log = logging.getLogger(__name__)


def newsletter_trigger(cron: str, timezone: str) -> CronTrigger:
    """The newsletter's schedule, in its own time zone."""
    return crontab_trigger(cron, timezone)


def latest_slot(trigger: CronTrigger, now: datetime, grace: timedelta) -> datetime | None:
    """The newest fire time in (now - grace, now], or None if the schedule had none."""
    latest = None
    for candidate in fire_times(trigger, now - grace):
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


def serve_due_slots(db: Database, settings: Settings, now: datetime) -> list[SlotOutcome]:
    """Compose the newest slot of every newsletter and cadence that fell within the grace
    period, each on its own.

    Called on every cron fire and at start-up, so a slot missed while the scheduler was down
    is still served once when it comes back within the grace period. A slot that fails is
    recorded as a failed edition by the compose service (and so reported once); one that
    could not even be recorded (the database went away) is logged and tried on the next
    tick. Either way the other newsletters' slots go on.
    """
    outcomes = []
    for due in newsletter_schedules(db):
        try:
            outcome = _serve(db, settings, due, now)
        except Exception:
            log.exception(
                "newsletter %s %s: the due slot was not served; trying again next tick",
                due.slug,
                due.cadence.value,
            )
            continue
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _serve(
    db: Database, settings: Settings, due: NewsletterSchedule, now: datetime
) -> SlotOutcome | None:
    """Compose the schedule's newest slot within the grace period, if it has one."""
    grace = timedelta(hours=settings.schedule_grace_hours)
    try:
        trigger = newsletter_trigger(due.cron, due.timezone)
    except (ValueError, LookupError):  # reported once, when the scheduler builds its jobs
        log.debug("newsletter %s has no usable %s schedule", due.slug, due.cadence.value)
        return None
    slot = latest_slot(trigger, now, grace)
    if slot is None:
        return None
    result = compose_scheduled(db, settings, due.newsletter_id, slot, due.cadence)
    if result.created and result.status != EditionStatus.failed:  # failures: logged by compose
        log.info(
            "newsletter %s %s slot %s: %s",
            due.slug,
            due.cadence.value,
            slot.isoformat(),
            _summary(result),
        )
    return SlotOutcome(due.slug, due.cadence, slot, result)


def _summary(result: ComposeResult) -> str:
    if result.skip_reason is not None:
        return f"skipped ({result.skip_reason})"
    done = f"{result.articles} article(s), {result.deliveries} deliveries queued"
    return f"{done}; {result.note}" if result.note else done
