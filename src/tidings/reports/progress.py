"""How editions are going: counts per delivery state, rate and ETA."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from tidings.catalog.newsletters import newsletter_by_slug
from tidings.db.engine import Database
from tidings.db.models import DeliveryState, Edition, EditionStatus, Newsletter
from tidings.db.types import utcnow
from tidings.deliver.ledger import recent_sent, state_counts
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

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def remaining(self) -> int:
        open_states = (DeliveryState.queued, DeliveryState.sending, DeliveryState.deferred)
        return sum(self.counts.get(state, 0) for state in open_states)

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


def _progress(db: Database, edition: Edition, slug: str, now: datetime) -> EditionProgress:
    if edition.final_counts is not None:
        # Over: its counts were stored when it ended; the ledger need not be counted again.
        counts = {DeliveryState(state): n for state, n in edition.final_counts.items()}
        recent = 0
    else:
        with db.session() as session:
            counts = state_counts(session, edition.id)
            recent = recent_sent(session, edition.id, now - RATE_WINDOW)
    return EditionProgress(
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
        counts=counts,
        per_second=recent / RATE_WINDOW.total_seconds(),
    )


def edition_progress(db: Database, edition_id: int) -> EditionProgress:
    """The progress of one edition, or :class:`NotFound`."""
    with db.session() as session:
        edition = session.get(Edition, edition_id)
        if edition is None:
            raise NotFound(f"no edition {edition_id} (see 'tidings edition list')")
        slug = session.get_one(Newsletter, edition.newsletter_id).slug
    return _progress(db, edition, slug, utcnow())


def list_editions(db: Database, slug: str | None, limit: int = 20) -> list[EditionProgress]:
    """The newest editions (of one newsletter, or all), newest first."""
    with db.session() as session:
        query = select(Edition, Newsletter.slug).join(
            Newsletter, Newsletter.id == Edition.newsletter_id
        )
        if slug is not None:
            query = query.where(Edition.newsletter_id == newsletter_by_slug(session, slug).id)
        rows = [(e, s) for e, s in session.execute(query.order_by(Edition.id.desc()).limit(limit))]
    now = utcnow()
    return [_progress(db, edition, newsletter_slug, now) for edition, newsletter_slug in rows]
