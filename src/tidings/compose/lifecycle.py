"""An edition's life after composing: scheduled drafts start, editors pause, resume, cancel.

The allowed moves are written once (:data:`MOVES`); the console, the CLI and the API all go
through them and refuse with the same sentence. Each change is one conditional UPDATE on the
edition's status, so two editors (or an editor and the scheduler, or a pause and the last
result) pressing at once cannot both win. Workers only claim deliveries of
editions that are ``sending``, so pausing stops new sends at once; messages already handed
to the SMTP server finish and are recorded.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tidings.compose.failures import is_transient
from tidings.compose.service import due_drafts, fan_out_edition, record_failed_start, sections_of
from tidings.config import Settings
from tidings.db.dialect import row_count
from tidings.db.engine import Database
from tidings.db.models import Article, Edition, EditionArticle, EditionStatus, Newsletter
from tidings.db.types import utcnow
from tidings.deliver.ledger import UNDERWAY, cancel_unsent, close_sent, nothing_open
from tidings.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Move:
    """One move an editor can make: its button, the statuses it starts from, where it goes."""

    label: str
    start: tuple[EditionStatus, ...]
    to: EditionStatus
    #: How the refusal ends: "Edition 4 is sent: it cannot be {refused}."
    refused: str


#: The one table of what an editor may do to an edition, by name (the console's buttons, the
#: CLI's commands, the API's verbs). The scheduler's own moves (scheduled -> sending; sending
#: -> sent when the last delivery is final, see :mod:`tidings.deliver.ledger.sent`) and
#: a mass refusal's pause follow the same arrows.
MOVES: dict[str, Move] = {
    "send": Move("Send now", (EditionStatus.scheduled,), EditionStatus.sending, "sent now"),
    "pause": Move("Pause", (EditionStatus.sending,), EditionStatus.paused, "paused"),
    "resume": Move("Resume", (EditionStatus.paused,), EditionStatus.sending, "resumed"),
    "cancel": Move(
        "Cancel",
        (EditionStatus.scheduled, EditionStatus.sending, EditionStatus.paused),
        EditionStatus.cancelled,
        "cancelled",
    ),
}


def allowed_moves(status: EditionStatus) -> list[str]:
    """The moves an editor may make from ``status``, in the table's order."""
    return [name for name, move in MOVES.items() if status in move.start]


def _refusal(edition_id: int, status: EditionStatus, name: str) -> InvalidInput:
    if status == EditionStatus.sent:
        return InvalidInput(f"Edition {edition_id} has already been sent.")
    return InvalidInput(
        f"Edition {edition_id} is {status.value}: it cannot be {MOVES[name].refused}."
    )


def _move(session: Session, edition_id: int, name: str) -> bool:
    """The move as one conditional UPDATE. Leaving ``sending`` or ``paused`` also needs a
    delivery still open: once the last result is written the edition is sent, and a pause
    racing with that result finds either ``sent`` or nothing left open, never both wrong."""
    move = MOVES[name]
    values: dict[str, object] = {"status": move.to}
    if name == "resume":
        # An editor's resume means "the relay is fine": the edition is no longer watched
        # for a mass refusal, by any worker (else a small list of mostly dead addresses
        # would be paused again at every resume).
        values["refusal_watch_ended_at"] = utcnow()
    not_started = Edition.status.not_in(UNDERWAY)
    moved = session.execute(
        update(Edition)
        .where(
            Edition.id == edition_id,
            Edition.status.in_(move.start),
            not_started | ~nothing_open(),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(row_count(moved))


def _change(db: Database, edition_id: int, name: str) -> None:
    with db.session() as session:
        if not _move(session, edition_id, name):
            session.rollback()
            # Refused: nothing left open closes it as sent (rows left by older code).
            close_sent(session, utcnow(), [edition_id])
            session.commit()
            edition = session.get(Edition, edition_id)
            if edition is None:
                raise NotFound(f"There is no edition {edition_id}.")
            raise _refusal(edition_id, edition.status, name)
        if MOVES[name].to == EditionStatus.cancelled:
            cancel_unsent(session, edition_id, "cancelled by an editor")
        session.commit()


def pause_edition(db: Database, edition_id: int) -> None:
    _change(db, edition_id, "pause")


def resume_edition(db: Database, edition_id: int) -> None:
    _change(db, edition_id, "resume")


def cancel_edition(db: Database, edition_id: int) -> None:
    """Stop for good: unsent deliveries become ``cancelled`` (kept in the ledger)."""
    _change(db, edition_id, "cancel")


def _start(db: Database, settings: Settings, edition_id: int, now: datetime) -> bool:
    """Move one draft to sending and fan it out, in one transaction; False if it was no
    longer a draft (another scheduler, or an editor, got there first). Readers who chose some
    of its sections get a variant of those (see
    :func:`~tidings.compose.service.fan_out_edition`)."""
    with db.session() as session:
        if not _move(session, edition_id, "send"):
            return False
        edition = session.get_one(Edition, edition_id)
        edition.started_at = now
        newsletter = session.get_one(Newsletter, edition.newsletter_id)
        articles = list(
            session.scalars(
                select(Article)
                .join(EditionArticle, EditionArticle.article_id == Article.id)
                .where(EditionArticle.edition_id == edition_id)
                .order_by(EditionArticle.position)
            )
        )
        sections = sections_of(articles)
        fan_out_edition(
            session, edition, newsletter, sections, now, settings=settings, articles=articles
        )
        session.commit()
        return True


def start_due_drafts(db: Database, settings: Settings, now: datetime | None = None) -> list[int]:
    """Start every scheduled draft whose time has come: fan-out happens now. Each on its
    own: one that cannot be started is marked failed with its reason; the others go on."""
    now = now or utcnow()
    started = []
    for edition_id in due_drafts(db, now):
        try:
            if _start(db, settings, edition_id, now):
                started.append(edition_id)
        except Exception as exc:
            if is_transient(exc):  # a database error, not the draft's: the next tick tries again
                log.warning("scheduled edition %d not started: %s", edition_id, exc)
                continue
            record_failed_start(db, edition_id, exc)
    return started


def send_draft_now(db: Database, settings: Settings, edition_id: int) -> None:
    """Send a scheduled draft at once instead of at its time."""
    if not _start(db, settings, edition_id, utcnow()):
        with db.session() as session:
            edition = session.get(Edition, edition_id)
            if edition is None:
                raise NotFound(f"There is no edition {edition_id}.")
            raise _refusal(edition_id, edition.status, "send")


#: Each move of :data:`MOVES` done.
EDITION_CHANGES: dict[str, Callable[[Database, Settings, int], None]] = {
    "send": send_draft_now,
    "pause": lambda db, _settings, edition_id: pause_edition(db, edition_id),
    "resume": lambda db, _settings, edition_id: resume_edition(db, edition_id),
    "cancel": lambda db, _settings, edition_id: cancel_edition(db, edition_id),
}
