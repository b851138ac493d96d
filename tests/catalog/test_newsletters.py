"""Newsletter settings are checked by one rule, whatever door they come through."""

import re
from dataclasses import replace

import pytest

from tidings.catalog.newsletters import (
    ARTICLES_AT_MOST,
    NewsletterSpec,
    SettingsRefused,
    create_newsletter,
)
from tidings.catalog.readerfacing import check_footer_text, check_postal_address, check_utm_source
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


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (None, None),
        ("  \r\n ", None),
        (
            "The Messenger\r\n\r\n  14 Rustaveli Avenue  \rTbilisi",
            "The Messenger\n14 Rustaveli Avenue\nTbilisi",
        ),
        ("Პ. ბ. 14, თბილისი", "Პ. ბ. 14, თბილისი"),
    ],
)
def test_a_postal_address_is_kept_as_its_lines(raw: str | None, stored: str | None) -> None:
    assert check_postal_address(raw) == stored


@pytest.mark.parametrize(
    ("raw", "refusal"),
    [
        ("\n".join("x" * 7), "has 7 lines; at most 6"),
        ("x" * 121, "121 characters; at most 120"),
        ("14 Rustaveli\x00Avenue", "control character (U+0000)"),
        ("14 Rustaveli\u2028Avenue", "control character (U+2028)"),
    ],
)
def test_a_postal_address_that_is_no_address_is_refused(raw: str, refusal: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(refusal)):
        check_postal_address(raw)


def test_footer_text_keeps_paragraphs_and_has_a_limit() -> None:
    assert check_footer_text(" One.\n\n\n\nTwo. \n") == "One.\n\nTwo."
    assert check_footer_text("\n \n") is None
    assert check_footer_text("x" * 1000) == "x" * 1000
    with pytest.raises(InvalidInput, match="1,001 characters; at most 1,000"):
        check_footer_text("x" * 1001)


@pytest.mark.parametrize("token", ["newsletter", "messenger.daily", "tidings_2026-x"])
def test_a_utm_source_token_is_taken(token: str) -> None:
    assert check_utm_source(f" {token} ") == token


@pytest.mark.parametrize("token", ["news letter", "a&b=c", "x" * 65, "ნიუსი", "a\nb"])
def test_a_utm_source_that_would_change_the_link_is_refused(token: str) -> None:
    with pytest.raises(InvalidInput, match="The UTM source"):
        check_utm_source(token)


def test_the_reader_settings_are_one_refusal_each(db: Database) -> None:
    spec = replace(
        _spec(10), postal_address="a\tb", footer_text="x" * 2000, utm_source="?", reader_time=True
    )
    with pytest.raises(SettingsRefused) as refused:
        create_newsletter(db, spec)
    assert set(refused.value.problems) == {"postal_address", "footer_text", "utm_source"}
    for sentence in refused.value.problems.values():
        assert sentence[0].isupper() and sentence.endswith(".")
    created = create_newsletter(
        db, replace(spec, postal_address="a", footer_text="", utm_source="")
    )
    assert (created.reader_time, created.postal_address, created.footer_text) == (True, "a", None)
    assert (created.welcome_enabled, created.show_images, created.utm_source) == (True, True, None)
