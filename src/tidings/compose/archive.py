"""The public archive: sent editions without personal data, their list and feed, and the
public front that lists every newsletter."""

import html
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.audience.preferences import SECTION_WINDOW
from tidings.catalog.newsletters import newsletter_by_slug
from tidings.config import Settings
from tidings.crontab import next_runs, schedule_in_words
from tidings.db.clauses import listed_publicly
from tidings.db.engine import Database
from tidings.db.models import (
    PUBLIC_EDITION_STATES,
    Article,
    Edition,
    Newsletter,
    Source,
)
from tidings.errors import NotFound
from tidings.mail.links import archive_path
from tidings.mail.personal import public_copy


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
            .join(Newsletter, Newsletter.id == Edition.newsletter_id)
            .where(Edition.newsletter_id == newsletter.id, listed_publicly())
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
    """A sent (or sending) edition's HTML without its personal places (greeting, address,
    unsubscribe and preference links: :func:`~tidings.mail.personal.public_copy`), with a
    bar on top that offers the newsletter's sign-up form and its other editions."""
    with db.session() as session:
        newsletter = _public_newsletter(session, slug)
        edition = session.get(Edition, edition_id)
        if (
            newsletter is None
            or edition is None
            or edition.newsletter_id != newsletter.id
            or edition.status not in PUBLIC_EDITION_STATES
            or edition.html_body is None
        ):
            return None
        stored, name = edition.html_body, newsletter.name
        subject = edition.subject or name
    bar = _subscribe_bar(name, front_signup_path(slug), archive_path(slug))
    # A page now, not a mail: its landmarks and a heading for screen readers (the masthead
    # shows the same words to the eye).
    heading = f'<h1 style="{_HIDDEN}">{html.escape(subject)}</h1>'
    return public_copy(stored, f"{bar}<main>{heading}", "</main>")


def front_signup_path(slug: str) -> str:
    """Where the front shows the newsletter's sign-up form (its section's anchor)."""
    return f"/#subscribe-{slug}"


_BAR_STYLE = (
    "font-family: Helvetica, Arial, sans-serif; font-size: 15px; line-height: 22px; "
    "background-color: #1d1d1b; color: #ffffff; padding: 10px 16px; text-align: center;"
)
_BAR_LINK = "color: #ffffff; font-weight: bold; text-decoration: underline;"


_HIDDEN = (
    "position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); "
    "white-space: nowrap;"
)


def _subscribe_bar(name: str, signup_url: str, archive_url: str) -> str:
    """The archive copy's own first lines: Subscribe, and the newsletter's other editions."""
    title = html.escape(name)
    return (
        f'<header style="{_BAR_STYLE}">'
        f'<a href="{html.escape(signup_url, quote=True)}" style="{_BAR_LINK}">'
        f"Subscribe to {title}</a> &middot; "
        f'<a href="{html.escape(archive_url, quote=True)}" style="{_BAR_LINK}">'
        "All editions</a></header>"
    )


@dataclass(frozen=True)
class FrontNewsletter:
    """One newsletter as the public front shows it."""

    slug: str
    name: str
    from_name: str
    #: "Every day at 07:00 (Asia/Tbilisi)", or the next send for a schedule words cannot say.
    schedule: str
    #: The weekly digest's schedule, for newsletters that offer one.
    weekly: str | None
    #: The sections with most of its recent stories ("Culture", "Politics"), at most
    #: :data:`FRONT_SECTIONS` of them, alphabetically.
    sections: list[str]
    editions: int
    #: Whether its recent stories have more sections than ``sections`` names.
    more_sections: bool = False


#: The most sections the front names for one newsletter: a feed with hundreds of categories
#: does not make it a wall of words.
FRONT_SECTIONS = 5


def edition_schedule(cron: str, timezone: str, now: datetime) -> str:
    """When a newsletter comes, for readers: its schedule in words, else its next send."""
    words = schedule_in_words(cron, timezone)
    if words is not None:
        return words
    # Runs fall on whole minutes: the next one after ``now`` is the first at or after the
    # next whole minute, the same all minute long. Kept for it, as the walk to a run years
    # away, or to none ("0 0 31 2,4,6,9,11 *"), takes most of a second on every public page.
    minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    return _next_send(cron, timezone, minute + timedelta(minutes=1) if minute < now else minute)


@lru_cache(maxsize=1024)
def _next_send(cron: str, timezone: str, start: datetime) -> str:
    """The next send at or after ``start``, in words; none for a schedule the scheduler
    cannot read either (a row today's checks would refuse, a zone gone from tzdata), so one
    such newsletter does not take the public pages down."""
    try:
        upcoming = next_runs(cron, timezone, 1, start)
    except (ValueError, LookupError):
        return "No edition is planned"
    if not upcoming:
        return "No edition is planned"
    run = upcoming[0]
    # The year too when it is not this one: "Monday 29 February" may be years away.
    same_year = run.year == start.astimezone(run.tzinfo).year
    label = run.strftime("%A %d %B at %H:%M" if same_year else "%A %d %B %Y at %H:%M")
    return f"Next edition: {label} ({timezone})"


def _front_sections(session: Session, now: datetime) -> dict[int, tuple[list[str], bool]]:
    """Every newsletter's recent sections in one query (those of the preference centre:
    stories within :data:`~tidings.audience.preferences.SECTION_WINDOW`): by newsletter, the
    :data:`FRONT_SECTIONS` with most stories, alphabetically, and whether there are more."""
    rows = session.execute(
        select(Source.newsletter_id, Article.section, func.count())
        .join(Source, Source.id == Article.source_id)
        .where(Article.section.is_not(None), Article.published_at >= now - SECTION_WINDOW)
        .group_by(Source.newsletter_id, Article.section)
    ).all()
    counted: dict[int, list[tuple[int, str]]] = {}
    for newsletter_id, section, stories in rows:
        if section:
            counted.setdefault(newsletter_id, []).append((-stories, section))
    return {
        newsletter_id: (
            sorted(section for _, section in sorted(found)[:FRONT_SECTIONS]),
            len(found) > FRONT_SECTIONS,
        )
        for newsletter_id, found in counted.items()
    }


def front(db: Database, now: datetime) -> list[FrontNewsletter]:
    """Every newsletter for the public front, by name: when it comes, what it covers; three
    queries however many newsletters there are."""
    with db.session() as session:
        counts = dict(
            session.execute(
                select(Edition.newsletter_id, func.count())
                .join(Newsletter, Newsletter.id == Edition.newsletter_id)
                .where(listed_publicly())
                .group_by(Edition.newsletter_id)
            ).all()
        )
        sections = _front_sections(session, now)
        newsletters = session.scalars(select(Newsletter).order_by(Newsletter.name)).all()
        return [
            FrontNewsletter(
                slug=n.slug,
                name=n.name,
                from_name=n.from_name,
                schedule=edition_schedule(n.schedule_cron, n.timezone, now),
                weekly=(
                    edition_schedule(n.weekly_schedule_cron, n.timezone, now)
                    if n.weekly_schedule_cron
                    else None
                ),
                sections=sections.get(n.id, ([], False))[0],
                editions=counts.get(n.id, 0),
                more_sections=sections.get(n.id, ([], False))[1],
            )
            for n in newsletters
        ]
