"""Newsletter settings are checked by one rule, whatever door they come through."""

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
