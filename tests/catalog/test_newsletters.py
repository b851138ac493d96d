"""Newsletter settings are checked by one rule, whatever door they come through."""

from dataclasses import replace

import pytest

from tidings.catalog.newsletters import ARTICLES_AT_MOST, NewsletterSpec, create_newsletter
from tidings.db.engine import Database
from tidings.errors import InvalidInput


def _spec(max_articles: int) -> NewsletterSpec:
    return NewsletterSpec(
        slug="daily",
        name="Daily",
        sender="Daily <daily@example.org>",
        schedule="0 7 * * *",
        timezone="UTC",
        max_articles=max_articles,
    )


@pytest.mark.parametrize("max_articles", [ARTICLES_AT_MOST + 1, 99999999999999999999])
def test_a_huge_article_count_is_refused_with_the_limit(db: Database, max_articles: int) -> None:
    with pytest.raises(InvalidInput, match="at most 1,000"):
        create_newsletter(db, _spec(max_articles))


def test_the_limit_itself_is_taken(db: Database) -> None:
    create_newsletter(db, _spec(ARTICLES_AT_MOST))


@pytest.mark.parametrize("cron", ["0 0 31 2,4,6,9,11 *", "0 0 30 2 *"])
def test_a_schedule_that_never_sends_is_refused(db: Database, cron: str) -> None:
    """Well formed, but none of its months has the day: it would never send."""
    with pytest.raises(InvalidInput, match="never sends"):
        create_newsletter(db, replace(_spec(10), schedule=cron))


def test_a_leap_day_schedule_is_taken(db: Database) -> None:
    create_newsletter(
        db,
        NewsletterSpec(
            slug="leap", name="Leap", sender="Leap <leap@example.org>", schedule="0 0 29 2 *"
        ),
    )
