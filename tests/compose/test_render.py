import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tidings.compose.render import EditionTooLarge, RenderedEdition, render_edition
from tidings.config import Settings
from tidings.db.models import Article, Newsletter
from tidings.errors import InvalidInput
from tidings.mail.edition import EditionMail
from tidings.mail.personal import SLOT_NAMES, Personal, SlotTemplate, values_of
from tidings.mail.templates import email_environment, load_triplet

NOW = datetime(2026, 6, 26, 4, 0, tzinfo=UTC)


def _newsletter() -> Newsletter:
    return Newsletter(
        slug="daily",
        name="The Daily Messenger",
        from_name="The Messenger",
        from_address="digest@messenger.example.ge",
        reply_to=None,
        schedule_cron="0 8 * * *",
        timezone="Asia/Tbilisi",
        template_set="digest",
    )


def _articles(count: int, summary: str = "Ministers met in Brussels.") -> list[Article]:
    return [
        Article(
            id=i,
            title=f"Headline {i} with “quotes”",
            url=f"https://messenger.example.ge/{i}",
            byline="By Messenger Staff",
            section="Diplomacy",
            summary=summary,
            published_at=NOW - timedelta(hours=i),
        )
        for i in range(count)
    ]


def _render(count: int = 3, **kwargs: object) -> RenderedEdition:
    templates = load_triplet(email_environment(None), "digest")
    return render_edition(templates, _newsletter(), _articles(count), issued_at=NOW, **kwargs)  # type: ignore[arg-type]


def test_render_inlines_css_once_and_keeps_placeholders() -> None:
    rendered = _render()
    assert 'style="' in rendered.html and "font-family" in rendered.html
    assert "@media" in rendered.html  # responsive and dark-mode rules stay in a <style>
    assert "Friday, June 26, 2026" in rendered.html  # the date in the newsletter's zone
    assert "June 26, 08:00" in rendered.html  # 04:00 UTC is 08:00 in Tbilisi
    for part in (rendered.html, rendered.text):
        # Every slot is made, but the stored name that older templates greet with.
        assert set(SlotTemplate.load(part).names) == set(SLOT_NAMES) - {"greeting_name"}
    assert rendered.subject == "The Daily Messenger: Headline 0 with “quotes” and 2 more"
    assert "1. Headline 0" in rendered.text
    assert "Read the story: https://messenger.example.ge/0" in rendered.text


def test_personal_values_are_escaped_in_html_and_cannot_break_markup() -> None:
    rendered = _render()
    evil = Personal(
        greeting_name='<script>alert(1)</script>"><img src=x>',
        greeting='<script>alert(1)</script>"><img src=x>',
        email="a@b.ge",
        unsubscribe_url="https://t/u/abc?x=1&y=2",
        preferences_url="https://t/p",
        view_url="https://t/v",
    )
    html = SlotTemplate.load(rendered.html).fill(values_of(evil, escape=True))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="https://t/u/abc?x=1&amp;y=2"' in html
    assert "ZZtidings_" not in html
    text = SlotTemplate.load(rendered.text).fill(values_of(evil, escape=False))
    assert "<script>alert(1)</script>" in text  # plain text is not HTML


def test_intro_markdown_is_sanitised_and_subject_is_one_line() -> None:
    rendered = _render(
        intro_markdown="**Big day.** <script>x()</script> [link](javascript:bad)",
        subject="Special\r\nBcc: everyone@example.ge",
    )
    assert "<strong>Big day.</strong>" in rendered.html
    assert "<script>" not in rendered.html and 'href="javascript:' not in rendered.html
    assert rendered.subject == "Special Bcc: everyone@example.ge"
    with pytest.raises(InvalidInput):
        _render(subject=" \r\n ")


def test_html_over_95_kb_is_refused() -> None:
    templates = load_triplet(email_environment(None), "digest")
    long_articles = _articles(40, summary="word " * 500)
    with pytest.raises(EditionTooLarge, match="over the 95 KB limit"):
        render_edition(templates, _newsletter(), long_articles, issued_at=NOW)


def test_operator_templates_override_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "email" / "digest").mkdir(parents=True)
    (tmp_path / "email" / "digest" / "subject.txt").write_text("Custom: {{ newsletter.name }}")
    templates = load_triplet(email_environment(tmp_path), "digest")
    rendered = render_edition(templates, _newsletter(), _articles(1), issued_at=NOW)
    assert rendered.subject == "Custom: The Daily Messenger"
    assert "Headline 0" in rendered.html  # body.html still the built-in one


def test_per_subscriber_work_fills_every_placeholder(settings: Settings) -> None:
    rendered = _render(12)
    mail = EditionMail(
        settings=settings,
        edition_id=7,
        slug="daily",
        newsletter_name="The Daily Messenger",
        from_name="The Messenger",
        from_address="digest@messenger.example.ge",
        reply_to=None,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        date=NOW,
    )
    message = mail.message_for(41, "nino@example.ge", "Nino", "<m@x>")
    assert b"ZZtidings_" not in message
    assert re.search(rb"/u/[A-Za-z0-9_.-]+", message)
