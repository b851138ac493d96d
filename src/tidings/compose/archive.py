"""The public archive: sent editions without personal data, and their list and feed."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.catalog.newsletters import newsletter_by_slug
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Edition, EditionStatus, Newsletter
from tidings.errors import NotFound
from tidings.mail.edition import edition_mail
from tidings.mail.links import archive_path

PUBLIC_STATES = (EditionStatus.sending, EditionStatus.sent)


@dataclass(frozen=True)
class ArchiveEntry:
    edition_id: int
    subject: str
    issued_at: datetime
    url: str


@dataclass(frozen=True)
class Archive:
    slug: str
    name: str
    url: str
    entries: list[ArchiveEntry]

    @property
    def updated_at(self) -> datetime | None:
        return self.entries[0].issued_at if self.entries else None


def _public_newsletter(session: Session, slug: str) -> Newsletter | None:
    """The newsletter named ``slug``, or None: the archive's pages answer 404."""
    try:
        return newsletter_by_slug(session, slug)
    except NotFound:
        return None


def archive(db: Database, settings: Settings, slug: str, limit: int = 100) -> Archive | None:
    """The newest public editions of a newsletter, newest first; None if no such newsletter."""
    with db.session() as session:
        newsletter = _public_newsletter(session, slug)
        if newsletter is None:
            return None
        rows = session.execute(
            select(Edition.id, Edition.subject, Edition.started_at, Edition.created_at)
            .where(Edition.newsletter_id == newsletter.id, Edition.status.in_(PUBLIC_STATES))
            .order_by(Edition.id.desc())
            .limit(limit)
        ).all()
    base = settings.base_url + archive_path(slug)
    entries = [
        ArchiveEntry(edition_id, subject or "", started or created, f"{base}/{edition_id}")
        for edition_id, subject, started, created in rows
    ]
    return Archive(slug, newsletter.name, base, entries)


def archive_html(db: Database, settings: Settings, slug: str, edition_id: int) -> str | None:
    """A sent (or sending) edition's HTML with neutral values in the personal places."""
    with db.session() as session:
        newsletter = _public_newsletter(session, slug)
        edition = session.get(Edition, edition_id)
        if (
            newsletter is None
            or edition is None
            or edition.newsletter_id != newsletter.id
            or edition.status not in PUBLIC_STATES
        ):
            return None
        mail = edition_mail(settings, edition, newsletter)
    return mail.public_html()
