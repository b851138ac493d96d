"""When a one-off edition is to be sent: the one rule for a send time an editor gives, in the
console (a wall-clock time in the newsletter's zone) or the API (an instant with its offset),
and the one service that sends an edition now or keeps it for its time.
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tidings.catalog.newsletters import newsletter_by_slug
from tidings.compose.oneoff import (
    DraftChanges,
    SendPlan,
    plan_one_off,
    schedule_one_off,
    scheduled_draft,
    send_one_off,
    update_scheduled,
)
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import EditionStatus
from tidings.db.types import utcnow
from tidings.errors import InvalidInput

#: The console's form gave no date and time (or one that cannot be read).
NO_TIME = "choose a date and time to send at"
#: The API's scheduled_for had no UTC offset: the API takes instants only.
NO_OFFSET = "scheduled_for: give a time with its UTC offset"
IN_THE_PAST = "the send time is in the past: use send now instead"


def _read(value: str | datetime | None) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat((value or "").strip())
    except ValueError:
        raise InvalidInput(NO_TIME) from None


def _wall_time(local: datetime, timezone: str) -> datetime:
    """The naive ``local`` read on the clocks of ``timezone``. A time the clocks skip (the hour
    they go forward) is refused; one they show twice (the hour they go back) is the first."""
    zone = ZoneInfo(timezone)
    aware = local.replace(tzinfo=zone, fold=0)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
        raise InvalidInput(
            f"{local.isoformat(' ', 'minutes')} does not exist in {timezone} "
            "(the clocks skip it that day): choose another time"
        )
    return aware


def send_time(value: str | datetime | None, timezone: str, now: datetime) -> datetime:
    """The UTC instant to send at, from ``value``: an ISO 8601 text as the console's
    date-and-time field sends it (empty or unreadable: :data:`NO_TIME`), or a datetime. Without
    an offset it is a wall-clock time in ``timezone`` (the newsletter's); with one, that
    instant. A time not after ``now`` is refused (:data:`IN_THE_PAST`), and so is one that
    leaves the years 1 to 9999 once in UTC."""
    moment = _read(value)
    try:
        if moment.tzinfo is None:
            moment = _wall_time(moment, timezone)
        instant = moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{moment.isoformat()} is out of range once in UTC") from None
    if instant <= now:
        raise InvalidInput(IN_THE_PAST)
    return instant


def schedule_at(
    db: Database, settings: Settings, slug: str, one_off: OneOff, when: str | datetime | None
) -> int:
    """Keep a one-off edition as a draft that the scheduler sends at ``when`` (read by
    :func:`send_time` in the newsletter's zone); the new edition's id."""
    with db.session() as session:
        timezone = newsletter_by_slug(session, slug).timezone
    return schedule_one_off(db, settings, slug, one_off, send_time(when, timezone, utcnow()))


@dataclass(frozen=True)
class EditionOrder:
    """A one-off edition of the newsletter ``slug``, sent now (``send_at`` None) or kept for
    ``send_at`` (read by :func:`send_time`)."""

    slug: str
    one_off: OneOff
    send_at: str | datetime | None = None


def create_edition(db: Database, settings: Settings, order: EditionOrder) -> int:
    """Send the ordered edition now, or keep it as a draft for its time; its id."""
    if order.send_at is None:
        return send_one_off(db, settings, order.slug, order.one_off).edition_id
    return schedule_at(db, settings, order.slug, order.one_off, order.send_at)


def plan_edition(
    db: Database, settings: Settings, slug: str, one_off: OneOff, when: str | datetime | None
) -> SendPlan:
    """What sending (``when`` None) or scheduling the edition would do, for the editor to
    confirm: its subject, its readers by fan-out's rule, and the send time, read and
    checked as :func:`schedule_at` will read it."""
    plan = plan_one_off(db, settings, slug, one_off)
    if when is None:
        return plan
    return replace(plan, send_at=send_time(when, plan.timezone, utcnow()))


def plan_scheduled(db: Database, settings: Settings, edition_id: int) -> SendPlan | None:
    """What sending a scheduled edition now would do, for the editor to confirm (None when it
    is not scheduled: the move itself then says why it cannot be sent)."""
    draft = scheduled_draft(db, edition_id)
    if draft.status != EditionStatus.scheduled:
        return None
    one_off = OneOff(
        article_ids=draft.article_ids,
        intro_markdown=draft.intro_markdown,
        subject=draft.subject,
    )
    return plan_one_off(db, settings, draft.slug, one_off)


def change_scheduled(
    db: Database,
    settings: Settings,
    edition_id: int,
    changes: DraftChanges,
    when: str | datetime | None = None,
) -> None:
    """Change a scheduled edition's content and, given ``when`` (read by :func:`send_time`
    in its newsletter's zone), its time; refused once it has started."""
    if when is not None:
        with db.session() as session:
            timezone = newsletter_by_slug(session, scheduled_draft(db, edition_id).slug).timezone
        changes = replace(changes, send_at=send_time(when, timezone, utcnow()))
    update_scheduled(db, settings, edition_id, changes)
