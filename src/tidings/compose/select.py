"""Which articles go into an edition."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from tidings.catalog.newsletters import newsletter_by_slug
from tidings.db.engine import Database
from tidings.db.models import (
    Article,
    Cadence,
    Edition,
    EditionArticle,
    EditionKind,
    EditionStatus,
    Newsletter,
    Source,
)
from tidings.db.types import MAX_ROW_ID
from tidings.errors import NotFound

#: How far one edition of each cadence reaches back: the first edition looks back this far,
#: and an article a feed delivered late is still taken if published within it.
LOOKBACK = {Cadence.daily: timedelta(hours=24), Cadence.weekly: timedelta(days=7)}


def previous_cutoff(
    session: Session,
    newsletter_id: int,
    before: datetime,
    cadence: Cadence = Cadence.daily,
    zone: str = "",
) -> datetime | None:
    """The cutoff of the newsletter's last scheduled edition of ``cadence`` (and readers'
    ``zone``) that went out: the articles of a skipped or failed slot are still new for the
    next one."""
    return session.scalar(
        select(Edition.cutoff_at)
        .where(
            Edition.newsletter_id == newsletter_id,
            Edition.kind == EditionKind.scheduled,
            Edition.cadence == cadence,
            Edition.zone == zone,
            Edition.status.not_in((EditionStatus.skipped, EditionStatus.failed)),
            Edition.cutoff_at.is_not(None),
            Edition.cutoff_at < before,
        )
        .order_by(Edition.cutoff_at.desc())
        .limit(1)
    )


def first_lookback(
    session: Session,
    newsletter_id: int,
    cutoff: datetime,
    cadence: Cadence = Cadence.daily,
    zone: str = "",
) -> datetime:
    """Where the first edition of ``cadence`` (and readers' ``zone``) looks back to: one
    cadence before its first scheduled slot (slots skipped for too few articles keep their
    articles for the next)."""
    first_slot = session.scalar(
        select(Edition.slot)
        .where(
            Edition.newsletter_id == newsletter_id,
            Edition.kind == EditionKind.scheduled,
            Edition.cadence == cadence,
            Edition.zone == zone,
            Edition.slot < cutoff,
        )
        .order_by(Edition.slot)
        .limit(1)
    )
    return min(first_slot or cutoff, cutoff) - LOOKBACK[cadence]


def _since(
    session: Session, newsletter_id: int, cutoff: datetime, cadence: Cadence, zone: str
) -> datetime:
    """Where an edition's new articles start: its sequence's previous cutoff, or, for a
    readers' zone, the last edition for everyone when that came later (the newsletter sent
    for everyone while reader time was off: its readers got that one last). A zone's first
    edition after the newsletter turned to reader time goes on from the last edition for
    everyone too (even one of this very slot: then it has nothing new, and is skipped), but
    a zone that first gets readers more than one cadence after the switch is new: its first
    edition looks back one cadence, not to an edition for everyone long before."""
    previous = previous_cutoff(session, newsletter_id, cutoff, cadence, zone)
    if zone:
        same_slot = cutoff + timedelta(seconds=1)
        everyone = previous_cutoff(session, newsletter_id, same_slot, cadence)
        if everyone is not None and previous is not None and everyone > previous:
            previous = everyone  # reader time was off for a while: everyone's came last
        elif (
            everyone is not None
            and previous is None
            and not _new_zone(session, newsletter_id, cutoff, cadence, zone, everyone)
        ):
            previous = everyone  # the zone's first edition since the switch
    return previous or first_lookback(session, newsletter_id, cutoff, cadence, zone)


def _new_zone(
    session: Session,
    newsletter_id: int,
    cutoff: datetime,
    cadence: Cadence,
    zone: str,
    everyone: datetime,
) -> bool:
    """Whether ``zone``'s first slot (this one, when it has none before) came more than one
    cadence after the newsletter's first edition for a readers' zone since the edition for
    everyone that ended at ``everyone``: the zone got its readers later than the switch."""
    scheduled = (
        Edition.newsletter_id == newsletter_id,
        Edition.kind == EditionKind.scheduled,
        Edition.cadence == cadence,
    )
    switched = session.scalar(
        select(func.min(Edition.slot)).where(
            *scheduled, Edition.zone != "", Edition.slot > everyone
        )
    )
    first = session.scalar(select(func.min(Edition.slot)).where(*scheduled, Edition.zone == zone))
    mine = min(first or cutoff, cutoff)
    return switched is not None and mine - switched > LOOKBACK[cadence]


def select_articles(
    session: Session,
    newsletter: Newsletter,
    cutoff: datetime,
    cadence: Cadence = Cadence.daily,
    zone: str = "",
) -> list[Article]:
    """New articles for a scheduled (or automatic one-off) edition of ``cadence``, newest first.

    New means: not yet in a scheduled edition of this newsletter and cadence (the weekly
    digest gathers the week's stories whatever the daily ones carried), published at or
    before ``cutoff``, and published after the previous cutoff — or first seen after it and
    published at most one cadence earlier, so an article a feed delivers late is not lost.
    A reader-time newsletter's editions for one readers' ``zone`` form their own sequence
    (their own cutoffs, their own articles already sent), so every zone's readers get each
    article once however the zones' send times interleave.
    """
    lookback = LOOKBACK[cadence]
    since = _since(session, newsletter.id, cutoff, cadence, zone)
    already_sent = exists().where(
        EditionArticle.article_id == Article.id,
        EditionArticle.edition_id == Edition.id,
        Edition.newsletter_id == newsletter.id,
        Edition.kind == EditionKind.scheduled,
        Edition.cadence == cadence,
        Edition.zone == zone,
    )
    return list(
        session.scalars(
            select(Article)
            .join(Source, Source.id == Article.source_id)
            .where(
                Source.newsletter_id == newsletter.id,
                Article.published_at <= cutoff,
                or_(
                    Article.published_at > since,
                    and_(Article.first_seen_at > since, Article.published_at > since - lookback),
                ),
                ~already_sent,
            )
            .order_by(Article.published_at.desc(), Article.id.desc())
            .limit(newsletter.max_articles)
        )
    )


def chosen_articles(session: Session, newsletter: Newsletter, ids: list[int]) -> list[Article]:
    """The articles an editor picked, in the order given; all must belong to the newsletter.
    An id no column can hold names no article (and is not given to the database)."""
    possible = [i for i in ids if 1 <= i <= MAX_ROW_ID]
    found = {
        a.id: a
        for a in session.scalars(
            select(Article)
            .join(Source, Source.id == Article.source_id)
            .where(Source.newsletter_id == newsletter.id, Article.id.in_(possible))
        )
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"no article {missing[0]} in newsletter {newsletter.slug!r}")
    return [found[i] for i in dict.fromkeys(ids)]


@dataclass(frozen=True)
class ArticleChoice:
    """An article as the one-off edition builder lists it."""

    id: int
    title: str
    section: str | None
    byline: str | None
    published_at: datetime
    #: The last edition of the newsletter that went out with it, and when it started.
    sent_in: int | None = None
    sent_at: datetime | None = None


#: An edition in these statuses has gone (or is going) out to readers.
WENT_OUT = (EditionStatus.sending, EditionStatus.paused, EditionStatus.sent)


def _last_sent(
    session: Session, newsletter_id: int, article_ids: list[int]
) -> dict[int, tuple[int, datetime]]:
    """For each article, the last edition of the newsletter that went out with it."""
    rows = session.execute(
        select(EditionArticle.article_id, Edition.id, Edition.started_at)
        .join(Edition, Edition.id == EditionArticle.edition_id)
        .where(
            Edition.newsletter_id == newsletter_id,
            Edition.status.in_(WENT_OUT),
            EditionArticle.article_id.in_(article_ids),
        )
        .order_by(Edition.started_at, Edition.id)
    )
    return {
        article_id: (edition_id, started)
        for article_id, edition_id, started in rows
        if started is not None
    }


def article_choices(
    db: Database, slug: str, query: str = "", limit: int = 100, include: Sequence[int] = ()
) -> list[ArticleChoice]:
    """The newsletter's newest articles, optionally those whose title contains ``query``,
    each with the last edition that already went out with it; then the articles of
    ``include`` (an edition's own, being changed) that the list left out."""
    with db.session() as session:
        newsletter_id = newsletter_by_slug(session, slug).id
        statement = (
            select(Article.id, Article.title, Article.section, Article.byline, Article.published_at)
            .join(Source, Source.id == Article.source_id)
            .where(Source.newsletter_id == newsletter_id)
        )
        needle = query.strip().lower()
        if needle:
            statement = statement.where(func.lower(Article.title).contains(needle, autoescape=True))
        rows = list(session.execute(statement.order_by(Article.published_at.desc()).limit(limit)))
        missing = set(include) - {row[0] for row in rows}
        if missing:
            rows += session.execute(
                select(
                    Article.id, Article.title, Article.section, Article.byline, Article.published_at
                )
                .join(Source, Source.id == Article.source_id)
                .where(Source.newsletter_id == newsletter_id, Article.id.in_(missing))
                .order_by(Article.published_at.desc())
            ).all()
        sent = _last_sent(session, newsletter_id, [row[0] for row in rows])
        return [ArticleChoice(*row, *sent.get(row[0], (None, None))) for row in rows]
