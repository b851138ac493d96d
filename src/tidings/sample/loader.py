"""Load the sample publication, so a fresh install has something to show."""

import logging
from contextlib import suppress
from dataclasses import dataclass

from sqlalchemy import select

from tidings.access.accounts import create_user, list_users
from tidings.audience.imports.importer import ImportReport, import_subscribers
from tidings.catalog.feedguard import check_feed_url
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter, newsletter_by_slug
from tidings.compose.failures import failure_of
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.migrate import upgrade
from tidings.db.models import Article, Edition, Newsletter, Source, UserRole
from tidings.errors import Conflict, InvalidInput
from tidings.ingest.service import PollOutcome, store_feed_document
from tidings.paths import sample_dir

log = logging.getLogger(__name__)
SAMPLE_SLUG = "messenger"


DEMO_EDITION_ARTICLES = 8


@dataclass(frozen=True)
class SampleLoad:
    """What loading the sample did, and the newest articles it holds."""

    newsletter: Newsletter
    feed: PollOutcome
    subscribers: ImportReport
    latest: list[Article]
    edition_id: int | None = None
    #: Why the demo edition could not be made (the operator's templates, say): the rest of
    #: the sample is loaded anyway.
    edition_problem: str | None = None


def sample_spec(settings: Settings) -> NewsletterSpec:
    """The sample newsletter; its feed URL is where the web app serves the sample feed."""
    return NewsletterSpec(
        slug=SAMPLE_SLUG,
        name="The Tbilisi Messenger Daily",
        sender="The Messenger <digest@messenger.example.ge>",
        reply_to="editors@messenger.example.ge",
        schedule="0 8 * * *",
        timezone="Asia/Tbilisi",
        feeds=[f"{settings.base_url}/sample/feed.xml"],
        min_articles=1,
        max_articles=12,
    )


def demo_settings(settings: Settings) -> Settings:
    """The settings the demo runs with: its sample feed is served by this very app at
    BASE_URL, on loopback by default, so private feed addresses are allowed when (and only
    when) that address is one."""
    try:
        check_feed_url(sample_spec(settings).feeds[0], allow_private=False)
    except InvalidInput:
        return settings.model_copy(update={"feed_allow_private": True})
    return settings


def load_sample(db: Database, settings: Settings) -> SampleLoad:
    """Migrate, create the sample newsletter (once), store its feed and subscribers.

    Running it again updates nothing that is already there.
    """
    upgrade(db.engine)
    with suppress(Conflict):  # loaded before: the rest below is idempotent
        create_newsletter(db, sample_spec(settings), allow_private=settings.feed_allow_private)
    with db.session() as session:
        newsletter = newsletter_by_slug(session, SAMPLE_SLUG)
        source = session.scalars(
            select(Source).where(Source.newsletter_id == newsletter.id).order_by(Source.id)
        ).first()
    if source is None or source.url is None:
        raise Conflict(f"the {SAMPLE_SLUG!r} newsletter has no feed source; remove it first")
    feed = PollOutcome(source_id=source.id, url=source.url)
    body = (sample_dir() / "feed.xml").read_bytes()
    store_feed_document(db, source.id, body, "application/rss+xml", feed)
    subscribers = import_subscribers(
        db, SAMPLE_SLUG, sample_dir() / "subscribers.csv", confirmed=True, batch_size=1000
    )
    with db.session() as session:
        latest = list(
            session.scalars(
                select(Article)
                .where(Article.source_id == source.id)
                .order_by(Article.published_at.desc())
                .limit(5)
            )
        )
    edition_id, problem = _demo_edition(db, settings, newsletter)
    return SampleLoad(newsletter, feed, subscribers, latest, edition_id, problem)


def _demo_edition(
    db: Database, settings: Settings, newsletter: Newsletter
) -> tuple[int | None, str | None]:
    """Queue one edition of the newest sample articles, once (the sample feed is dated in the
    past, so the usual "new since the last edition" selection would find nothing); or why
    it could not be made, which stops nothing else of the demo."""
    with db.session() as session:
        if session.scalar(select(Edition.id).where(Edition.newsletter_id == newsletter.id)):
            return None, None
        newest = session.scalars(
            select(Article.id)
            .join(Source, Source.id == Article.source_id)
            .where(Source.newsletter_id == newsletter.id)
            .order_by(Article.published_at.desc())
            .limit(DEMO_EDITION_ARTICLES)
        ).all()
    try:
        result = send_one_off(
            db, settings, SAMPLE_SLUG, OneOff(article_ids=list(newest), created_by="demo")
        )
    except Exception as exc:
        _, problem = failure_of(exc)
        log.error("the demo edition could not be made: %s", problem)
        return None, problem
    return result.edition_id, None


DEMO_ADMIN = "admin@messenger.example.ge"


def demo_admin(db: Database) -> str | None:
    """On a fresh demo, an admin user; their one-time password (None if users exist)."""
    if list_users(db):
        return None
    return create_user(db, DEMO_ADMIN, UserRole.admin)[1]
