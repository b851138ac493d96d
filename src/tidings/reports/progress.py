"""How editions are going: counts per delivery state, what came back (bounced, complained),
rate and ETA.

The rate is messages sent per second over the time actually spent sending: from the start
(``started_at``) to the last result of an edition that is over or paused, or to now while it
is sending (the time of a pause that was resumed is still counted).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.catalog.newsletters import newsletter_by_slug
from tidings.db.clauses import KeysetPage, keyset_page
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryFeedback,
    DeliveryState,
    Edition,
    EditionStatus,
    Newsletter,
)
from tidings.db.types import utcnow
from tidings.deliver.ledger import OPEN_STATES
from tidings.errors import NotFound
from tidings.reports.tallies import tallies_of

#: The shortest sending time a rate is computed over: a burst of 11 messages in 0.2 s
#: reads "11 per second", not 55.
MIN_SENDING_TIME = timedelta(seconds=1)


@dataclass(frozen=True)
class EditionProgress:
    edition_id: int
    slug: str
    kind: str
    status: EditionStatus
    skip_reason: str | None
    #: Why it failed or was paused, which articles were dropped to fit: for people to read.
    note: str | None
    slot: datetime | None
    scheduled_for: datetime | None
    subject: str | None
    created_at: datetime
    counts: dict[DeliveryState, int]
    per_second: float
    #: The newsletter's time zone (an IANA name), for showing its times.
    timezone: str = "UTC"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: Deliveries the relay took that came back later: as a bounce, or as a complaint.
    bounced: int = 0
    complained: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def remaining(self) -> int:
        return sum(self.counts.get(state, 0) for state in OPEN_STATES)

    @property
    def done(self) -> int:
        return self.total - self.remaining

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0

    @property
    def scheduled_time(self) -> str | None:
        """When a scheduled edition goes out, in the newsletter's zone with the zone named, and
        in UTC: "2026-12-01 09:00 Europe/Paris (08:00 UTC)"."""
        if self.scheduled_for is None:
            return None
        return zoned_time(self.scheduled_for, self.timezone)

    @property
    def started(self) -> bool:
        """Whether it has begun sending (fanned out): progress means something."""
        return self.total > 0 or self.status in (EditionStatus.sending, EditionStatus.paused)

    @property
    def eta_seconds(self) -> float | None:
        if not self.remaining or self.per_second <= 0:
            return None
        return self.remaining / self.per_second


def zoned_time(when: datetime, zone: str) -> str:
    """``when`` in the zone ``zone`` with the zone named, then in UTC."""
    utc = when.astimezone(UTC)
    try:
        local = utc.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    if zone == "UTC":
        return f"{utc:%Y-%m-%d %H:%M} UTC"
    day = "" if local.date() == utc.date() else f"{utc:%Y-%m-%d} "
    return f"{local:%Y-%m-%d %H:%M} {zone} ({day}{utc:%H:%M} UTC)"


def sending_rate(
    sent: int,
    started_at: datetime | None,
    last_sent_at: datetime | None,
    status: EditionStatus,
    now: datetime,
) -> float:
    """Messages sent per second over the time spent sending: from ``started_at`` to now
    while sending, else to the last message sent (at least :data:`MIN_SENDING_TIME`)."""
    if not sent or started_at is None:
        return 0.0
    end = now if status == EditionStatus.sending else (last_sent_at or now)
    spent = max(end - started_at, MIN_SENDING_TIME)
    return sent / spent.total_seconds()


def _rated(edition: Edition) -> bool:
    """Whether a finished edition's rate needs its last send: it started and sent some."""
    sent = (edition.final_counts or {}).get(DeliveryState.sent.value, 0)
    return edition.started_at is not None and bool(sent)


def _feedback_counts(
    session: Session, edition_ids: Sequence[int]
) -> dict[int, dict[DeliveryFeedback, int]]:
    """What came back about several editions' deliveries, per edition: one grouped query.
    Counted live even for editions that are over, since bounces and complaints come back
    days after the last delivery was sent."""
    found: dict[int, dict[DeliveryFeedback, int]] = {edition_id: {} for edition_id in edition_ids}
    if not edition_ids:
        return found
    for edition_id, feedback, n in session.execute(
        select(Delivery.edition_id, Delivery.feedback, func.count())
        .where(Delivery.edition_id.in_(edition_ids), Delivery.feedback.is_not(None))
        .group_by(Delivery.edition_id, Delivery.feedback)
    ):
        if feedback is not None:  # never: the query asks for marked deliveries only
            found[edition_id][feedback] = n
    return found


def _progress_of(
    db: Database, session: Session, rows: Sequence[tuple[Edition, str, str]], now: datetime
) -> list[EditionProgress]:
    """The progress of each (edition, newsletter slug, newsletter zone), in order. An edition
    that is over had its counts stored when it ended; the others are counted together, with
    their last sends (one query, unless their counts are kept: see :mod:`.tallies`); the
    last sends of finished editions (one query for those not yet kept) and what came back
    (one query) are asked for too."""
    tallies = tallies_of(db.engine)
    live = tallies.live_counts(session, [e for e, _, _ in rows if e.final_counts is None])
    finished = [e for e, _, _ in rows if e.final_counts is not None and _rated(e)]
    last_sent = tallies.finished_last_sent(session, finished)
    came_back = _feedback_counts(session, [edition.id for edition, _, _ in rows])
    found = []
    for edition, slug, zone in rows:
        if edition.final_counts is not None:
            edition_counts = {DeliveryState(state): n for state, n in edition.final_counts.items()}
            edition_last_sent = last_sent.get(edition.id)
        else:
            edition_counts = live[edition.id].counts
            edition_last_sent = live[edition.id].last_sent
        found.append(
            EditionProgress(
                edition_id=edition.id,
                slug=slug,
                kind=edition.kind.value,
                status=edition.status,
                skip_reason=edition.skip_reason,
                note=edition.note,
                slot=edition.slot,
                scheduled_for=edition.scheduled_for,
                subject=edition.subject,
                created_at=edition.created_at,
                counts=edition_counts,
                per_second=sending_rate(
                    edition_counts.get(DeliveryState.sent, 0),
                    edition.started_at,
                    edition_last_sent,
                    edition.status,
                    now,
                ),
                timezone=zone,
                started_at=edition.started_at,
                finished_at=edition.finished_at,
                bounced=came_back[edition.id].get(DeliveryFeedback.bounced, 0),
                complained=came_back[edition.id].get(DeliveryFeedback.complained, 0),
            )
        )
    return found


def edition_progress(db: Database, edition_id: int) -> EditionProgress:
    """The progress of one edition, or :class:`NotFound`."""
    with db.session() as session:
        row = session.execute(
            select(Edition, Newsletter.slug, Newsletter.timezone)
            .join(Newsletter, Newsletter.id == Edition.newsletter_id)
            .where(Edition.id == edition_id)
        ).one_or_none()
        if row is None:
            raise NotFound(f"There is no edition {edition_id}.")
        return _progress_of(db, session, [(row[0], row[1], row[2])], utcnow())[0]


def list_editions(db: Database, slug: str | None, limit: int = 20) -> list[EditionProgress]:
    """The newest editions (of one newsletter, or all), newest first."""
    with db.session() as session:
        query = select(Edition, Newsletter.slug, Newsletter.timezone).join(
            Newsletter, Newsletter.id == Edition.newsletter_id
        )
        if slug is not None:
            query = query.where(Edition.newsletter_id == newsletter_by_slug(session, slug).id)
        found = session.execute(query.order_by(Edition.id.desc()).limit(limit))
        rows = [(e, s, z) for e, s, z in found]
        return _progress_of(db, session, rows, utcnow())


def edition_page(
    db: Database, slug: str | None, after: int, size: int
) -> KeysetPage[EditionProgress]:
    """One page of editions in id order after ``after`` (of the newsletter ``slug``, or of
    all; an unknown slug gives an empty page), each with its progress: at most four queries
    for the whole page (the page, the live editions' counts, the last sends, and what came
    back)."""
    with db.session() as session:
        query = select(Edition.id, Edition, Newsletter.slug, Newsletter.timezone).join(
            Newsletter, Newsletter.id == Edition.newsletter_id
        )
        if slug is not None:
            query = query.where(Newsletter.slug == slug)
        page = keyset_page(session, query, Edition.id, after, size)
        rows = [(edition, newsletter_slug, zone) for _, edition, newsletter_slug, zone in page.rows]
        return KeysetPage(_progress_of(db, session, rows, utcnow()), page.next_after)
