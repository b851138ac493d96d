"""Which scheduled slot is due for a newsletter, and serving it once.

Correctness never rests on the scheduler: serving a slot twice (two schedulers, a restart, a
retry) finds the existing edition through the (newsletter, slot) constraint and does nothing.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from tidings.compose.service import ComposeResult, compose_scheduled
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Cadence, Newsletter
from tidings.schedule.crontab import crontab_trigger

log = logging.getLogger(__name__)


def newsletter_trigger(cron: str, timezone: str) -> CronTrigger:
    """The newsletter's schedule, in its own time zone."""
    return crontab_trigger(cron, timezone)


def latest_slot(trigger: CronTrigger, now: datetime, grace: timedelta) -> datetime | None:
    """The newest fire time in (now - grace, now], or None if the schedule had none."""
    latest = None
    candidate = trigger.get_next_fire_time(None, now - grace)
    while candidate is not None and candidate <= now:
        latest = candidate
        candidate = trigger.get_next_fire_time(candidate, candidate + timedelta(seconds=1))
    return latest


@dataclass(frozen=True)
class SlotOutcome:
    slug: str
    cadence: Cadence
    slot: datetime
    result: ComposeResult


def schedules_of(newsletter: Newsletter) -> list[tuple[Cadence, str]]:
    """Each cadence the newsletter is composed in, with its crontab line."""
    found = [(Cadence.daily, newsletter.schedule_cron)]
    if newsletter.weekly_schedule_cron:
        found.append((Cadence.weekly, newsletter.weekly_schedule_cron))
    return found


def serve_due_slots(db: Database, settings: Settings, now: datetime) -> list[SlotOutcome]:
    """Compose the newest slot of every newsletter and cadence that fell within the grace
    period.

    Called on every cron fire and at start-up, so a slot missed while the scheduler was down
    is still served once when it comes back within the grace period.
    """
    grace = timedelta(hours=settings.schedule_grace_hours)
    with db.session() as session:
        due = [
            (n.id, n.slug, cadence, cron, n.timezone)
            for n in session.scalars(select(Newsletter).order_by(Newsletter.id))
            for cadence, cron in schedules_of(n)
        ]
    outcomes = []
    for newsletter_id, slug, cadence, cron, timezone in due:
        slot = latest_slot(newsletter_trigger(cron, timezone), now, grace)
        if slot is None:
            continue
        result = compose_scheduled(db, settings, newsletter_id, slot, cadence)
        if result.created:
            log.info(
                "newsletter %s %s slot %s: %s",
                slug,
                cadence.value,
                slot.isoformat(),
                result.skip_reason or f"{result.deliveries} deliveries queued",
            )
        outcomes.append(SlotOutcome(slug, cadence, slot, result))
    return outcomes
