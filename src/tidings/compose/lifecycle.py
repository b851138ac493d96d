"""An edition's life after composing: scheduled drafts start, editors pause, resume, cancel.

Each change is one conditional UPDATE on the edition's status, so two editors (or an editor
and the scheduler) pressing at once cannot both win. Workers only claim deliveries of
editions that are ``sending``, so pausing stops new sends at once; messages already handed
to the SMTP server finish and are recorded.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tidings.compose.failures import is_transient
from tidings.compose.service import due_drafts, fan_out_edition, record_failed_start, sections_of
from tidings.db.dialect import row_count
from tidings.db.engine import Database
from tidings.db.models import Article, Edition, EditionArticle, EditionStatus, Newsletter
from tidings.db.types import utcnow
from tidings.deliver.ledger import cancel_unsent
from tidings.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)


def _move(
    session: Session, edition_id: int, allowed: tuple[EditionStatus, ...], to: EditionStatus
) -> bool:
    values: dict[str, object] = {"status": to}
    if EditionStatus.paused in allowed and to == EditionStatus.sending:
        # An editor's resume means "the relay is fine": the edition is no longer watched
        # for a mass refusal, by any worker (else a small list of mostly dead addresses
        # would be paused again at every resume).
        values["refusal_watch_ended_at"] = utcnow()
    moved = session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.status.in_(allowed))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(row_count(moved))


def _change(
    db: Database, edition_id: int, allowed: tuple[EditionStatus, ...], to: EditionStatus
) -> None:
    with db.session() as session:
        edition = session.get(Edition, edition_id)
        if edition is None:
            raise NotFound(f"no edition {edition_id}")
        if not _move(session, edition_id, allowed, to):
            raise InvalidInput(
                f"edition {edition_id} is {edition.status.value}: it cannot become {to.value}"
            )
        if to == EditionStatus.cancelled:
            cancel_unsent(session, edition_id, "cancelled by an editor")
        session.commit()


def pause_edition(db: Database, edition_id: int) -> None:
    _change(db, edition_id, (EditionStatus.sending,), EditionStatus.paused)


def resume_edition(db: Database, edition_id: int) -> None:
    _change(db, edition_id, (EditionStatus.paused,), EditionStatus.sending)


def cancel_edition(db: Database, edition_id: int) -> None:
    """Stop for good: unsent deliveries become ``cancelled`` (kept in the ledger)."""
    allowed = (EditionStatus.scheduled, EditionStatus.sending, EditionStatus.paused)
    _change(db, edition_id, allowed, EditionStatus.cancelled)


def _start(db: Database, edition_id: int, now: datetime) -> bool:
    """Move one draft to sending and fan it out, in one transaction; False if it was no
    longer a draft (another scheduler, or an editor, got there first)."""
    with db.session() as session:
        if not _move(session, edition_id, (EditionStatus.scheduled,), EditionStatus.sending):
            return False
        edition = session.get_one(Edition, edition_id)
        edition.started_at = now
        newsletter = session.get_one(Newsletter, edition.newsletter_id)
        articles = list(
            session.scalars(
                select(Article)
                .join(EditionArticle, EditionArticle.article_id == Article.id)
                .where(EditionArticle.edition_id == edition_id)
            )
        )
        fan_out_edition(session, edition, newsletter, sections_of(articles), now)
        session.commit()
        return True


def start_due_drafts(db: Database, now: datetime | None = None) -> list[int]:
    """Start every scheduled draft whose time has come: fan-out happens now. Each on its
    own: one that cannot be started is marked failed with its reason; the others go on."""
    now = now or utcnow()
    started = []
    for edition_id in due_drafts(db, now):
        try:
            if _start(db, edition_id, now):
                started.append(edition_id)
        except Exception as exc:
            if is_transient(exc):  # a database error, not the draft's: the next tick tries again
                log.warning("scheduled edition %d not started: %s", edition_id, exc)
                continue
            record_failed_start(db, edition_id, exc)
    return started


def send_draft_now(db: Database, edition_id: int) -> None:
    """Send a scheduled draft at once instead of at its time."""
    with db.session() as session:
        edition = session.get(Edition, edition_id)
        if edition is None:
            raise NotFound(f"no edition {edition_id}")
        status = edition.status
    if not _start(db, edition_id, utcnow()):
        raise InvalidInput(
            f"edition {edition_id} is {status.value}: only a scheduled edition can be sent now"
        )


#: What an editor may do to an edition, by name (the console's buttons, the API's verbs).
EDITION_CHANGES: dict[str, Callable[[Database, int], None]] = {
    "send": send_draft_now,
    "pause": pause_edition,
    "resume": resume_edition,
    "cancel": cancel_edition,
}
