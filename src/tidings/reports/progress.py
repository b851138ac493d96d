"""How editions are going: counts per delivery state, what came back (bounced, complained),
rate and ETA."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

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

RATE_WINDOW = timedelta(seconds=60)


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
    def eta_seconds(self) -> float | None:
        if not self.remaining or self.per_second <= 0:
            return None
        return self.remaining / self.per_second


def _live_figures(
    session: Session, edition_ids: Sequence[int], since: datetime
) -> tuple[dict[int, dict[DeliveryState, int]], dict[int, int]]:
    """Counts per delivery state, and deliveries sent since ``since``, of several editions at
    once: two grouped queries, whatever the number of editions (none for no editions)."""
    counts: dict[int, dict[DeliveryState, int]] = {edition_id: {} for edition_id in edition_ids}
    if not edition_ids:
        return counts, {}
    for edition_id, state, n in session.execute(
        select(Delivery.edition_id, Delivery.state, func.count())
        .where(Delivery.edition_id.in_(edition_ids))
        .group_by(Delivery.edition_id, Delivery.state)
    ):
        counts[edition_id][state] = n
    recent: dict[int, int] = {
        edition_id: n
        for edition_id, n in session.execute(
            select(Delivery.edition_id, func.count())
            .where(
                Delivery.edition_id.in_(edition_ids),
                Delivery.state == DeliveryState.sent,
                Delivery.sent_at >= since,
            )
            .group_by(Delivery.edition_id)
        )
    }
    return counts, recent


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
    session: Session, rows: Sequence[tuple[Edition, str]], now: datetime
) -> list[EditionProgress]:
    """The progress of each (edition, newsletter slug), in order. An edition that is over had
    its counts stored when it ended; the others are counted together (two queries); what came
    back is counted for all of them (one more)."""
    live = [edition.id for edition, _ in rows if edition.final_counts is None]
    counts, recent = _live_figures(session, live, now - RATE_WINDOW)
    came_back = _feedback_counts(session, [edition.id for edition, _ in rows])
    found = []
    for edition, slug in rows:
        if edition.final_counts is not None:
            edition_counts = {DeliveryState(state): n for state, n in edition.final_counts.items()}
        else:
            edition_counts = counts[edition.id]
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
                per_second=recent.get(edition.id, 0) / RATE_WINDOW.total_seconds(),
                bounced=came_back[edition.id].get(DeliveryFeedback.bounced, 0),
                complained=came_back[edition.id].get(DeliveryFeedback.complained, 0),
            )
        )
    return found


def edition_progress(db: Database, edition_id: int) -> EditionProgress:
    """The progress of one edition, or :class:`NotFound`."""
    with db.session() as session:
        row = session.execute(
            select(Edition, Newsletter.slug)
            .join(Newsletter, Newsletter.id == Edition.newsletter_id)
            .where(Edition.id == edition_id)
        ).one_or_none()
        if row is None:
            raise NotFound(f"no edition {edition_id} (see 'tidings edition list')")
        return _progress_of(session, [(row[0], row[1])], utcnow())[0]


def list_editions(db: Database, slug: str | None, limit: int = 20) -> list[EditionProgress]:
    """The newest editions (of one newsletter, or all), newest first."""
    with db.session() as session:
        query = select(Edition, Newsletter.slug).join(
            Newsletter, Newsletter.id == Edition.newsletter_id
        )
        if slug is not None:
            query = query.where(Edition.newsletter_id == newsletter_by_slug(session, slug).id)
        rows = [(e, s) for e, s in session.execute(query.order_by(Edition.id.desc()).limit(limit))]
        return _progress_of(session, rows, utcnow())


def edition_page(
    db: Database, slug: str | None, after: int, size: int
) -> KeysetPage[EditionProgress]:
    """One page of editions in id order after ``after`` (of the newsletter ``slug``, or of
    all; an unknown slug gives an empty page), each with its progress: at most four queries
    for the whole page (the page, the live editions' counts and recent sends, and what came
    back)."""
    with db.session() as session:
        query = select(Edition.id, Edition, Newsletter.slug).join(
            Newsletter, Newsletter.id == Edition.newsletter_id
        )
        if slug is not None:
            query = query.where(Newsletter.slug == slug)
        page = keyset_page(session, query, Edition.id, after, size)
        rows = [(edition, newsletter_slug) for _, edition, newsletter_slug in page.rows]
        return KeysetPage(_progress_of(session, rows, utcnow()), page.next_after)
