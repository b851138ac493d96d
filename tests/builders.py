"""Small builders for the pipeline tests: a newsletter with articles and subscribers."""

import os
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tidings.audience.service import add_subscriber
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter, push_source
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Article, Newsletter
from tidings.ingest.drafts import make_draft
from tidings.ingest.store import upsert_articles

SENDER = "The Messenger <digest@messenger.example.ge>"


def newsletter(
    db: Database,
    slug: str = "daily",
    *,
    schedule: str = "0 8 * * *",
    timezone: str = "Asia/Tbilisi",
    min_articles: int = 1,
    max_articles: int = 10,
) -> int:
    created = create_newsletter(
        db,
        NewsletterSpec(
            slug=slug,
            name="The Daily Messenger",
            sender=SENDER,
            reply_to="ed@messenger.example.ge",
            schedule=schedule,
            timezone=timezone,
            min_articles=min_articles,
            max_articles=max_articles,
        ),
    )
    return created.id


def articles(
    db: Database,
    slug: str,
    count: int,
    published: datetime,
    step: timedelta = timedelta(minutes=30),
    seen: datetime | None = None,
) -> list[int]:
    with db.session() as session:
        nl = session.scalar(select(Newsletter).where(Newsletter.slug == slug))
        assert nl is not None
        source = push_source(session, nl)
        existing = session.query(Article).filter(Article.source_id == source.id).count()
        drafts = [
            make_draft(
                url=f"https://messenger.example.ge/{slug}/{existing + i}",
                title=f"Story {existing + i}: Panjikidze meets envoys",
                byline="By Messenger Staff",
                section="Politics",
                summary=f"Summary {existing + i}.",
                content_html="<p>Body</p>",
                published_at=published + step * i,
            )
            for i in range(count)
        ]
        upsert_articles(session, source.id, drafts, seen or datetime.now(UTC))
        session.commit()
        ids = session.scalars(
            select(Article.id).where(Article.source_id == source.id).order_by(Article.id)
        ).all()
        return list(ids)[existing:]


def subscribers(db: Database, slug: str, count: int) -> list[str]:
    addresses = [f"reader{i}@example.ge" for i in range(count)]
    for i, address in enumerate(addresses):
        add_subscriber(db, slug, address, f"Reader {i}", confirmed=True, source="test")
    return addresses


def one_off_edition(db: Database, settings: Settings, readers: int) -> list[str]:
    """A newsletter "daily" with two articles and ``readers`` confirmed readers, and a
    one-off edition queued to them all; their addresses."""
    newsletter(db)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    addresses = subscribers(db, "daily", readers)
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    return addresses


def worker_env(settings: Settings, port: int, **extra: str) -> dict[str, str]:
    """The environment of a worker subprocess on the test's database and SMTP server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        {
            "TIDINGS_DATABASE_URL": settings.resolved_database_url,
            "TIDINGS_SMTP_URL": f"smtp://127.0.0.1:{port}",
            "TIDINGS_SECRET_KEY": settings.secret,
            "TIDINGS_DATA_DIR": str(settings.data_dir),
            "TIDINGS_ALLOW_INSECURE_LINKS": "true",  # a loopback server, http links
            # A pool that stays at its four connections, as these tests' stalls assume
            # (tests/deliver/test_adaptive_pool.py covers growth).
            "TIDINGS_SMTP_MAX_CONNECTIONS": "4",
            **extra,
        }
    )
    return env
