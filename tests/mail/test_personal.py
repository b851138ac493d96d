"""Slots: only the templates make them; content's placeholder text stays as written."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from tests.compose.slots import GUESSED_NONCE, PLACEHOLDERS, intro_markdown
from tidings.compose.render import RenderedEdition, render_edition
from tidings.config import Settings
from tidings.db.models import Article, Newsletter
from tidings.mail.edition import EditionMail
from tidings.mail.personal import (
    SLOT_NAMES,
    Personal,
    SlotMarkers,
    SlotTemplate,
    TemplateAltersSlot,
    values_of,
)
from tidings.mail.templates import email_environment, load_triplet

NOW = datetime(2026, 6, 26, 4, 0, tzinfo=UTC)
READER = Personal(
    greeting_name="Nino",
    email="nino@example.ge",
    unsubscribe_url="https://news.example.ge/u/TOKEN-U",
    preferences_url="https://news.example.ge/preferences/TOKEN-P",
    view_url="https://news.example.ge/archive/daily/7",
    greeting="Hello Nino,",
    signed_up="You get this mail because you signed up on March 3, 2026",
)
HOSTILE = " ".join(PLACEHOLDERS)
SETTINGS = Settings(secret_key="slot-test-secret-key-" + "x" * 32)


def _newsletter(name: str = "The Daily Messenger") -> Newsletter:
    return Newsletter(
        slug="daily",
        name=name,
        from_name=f"{name} desk",
        from_address="digest@messenger.example.ge",
        reply_to=None,
        schedule_cron="0 8 * * *",
        timezone="Asia/Tbilisi",
        template_set="digest",
    )


def _article(text: str, n: int = 0) -> Article:
    return Article(
        id=n,
        title=f"Parliament {text}",
        url=f"https://messenger.example.ge/{n}?who={text.replace(' ', '+')}",
        byline=f"By {text}",
        section=f"Politics {text}",
        summary=f"Ministers met. {text}",
        content_html=f"<p>{text}</p>",
        published_at=NOW - timedelta(hours=n),
    )


def _render(text: str, templates_dir: Path | None = None, **kwargs: str | None) -> RenderedEdition:
    templates = load_triplet(email_environment(templates_dir), "digest")
    newsletter = _newsletter(f"Messenger {text}")
    articles = [_article(text, n) for n in range(3)]
    return render_edition(templates, newsletter, articles, issued_at=NOW, **kwargs)  # type: ignore[arg-type]


def test_content_with_every_placeholder_makes_no_slot() -> None:
    """Hostile text in every field, the intro, the subject and the newsletter's name: the
    parts have exactly the slots of a render of plain text, and the text stays as written."""
    plain = _render("plain", intro_markdown="plain", subject="plain")
    subject = " ".join(PLACEHOLDERS[:6])  # (a subject is cut at 250 characters)
    hostile = _render(HOSTILE, intro_markdown=intro_markdown(), subject=subject)
    for plain_part, hostile_part, values in (
        (plain.html, hostile.html, values_of(READER, escape=True)),
        (plain.text, hostile.text, values_of(READER, escape=False)),
    ):
        expected = SlotTemplate.load(plain_part).names
        assert set(expected) == set(SLOT_NAMES) - {"greeting_name"}  # (older templates')
        assert SlotTemplate.load(hostile_part).names == expected
        filled = SlotTemplate.load(hostile_part).fill(values)
        assert filled.count("nino@example.ge") == 1 and filled.count("TOKEN-P") == 1
        assert "ZZtidings_email_ZZ" in filled and f"ZZtidings_{GUESSED_NONCE}_email_ZZ" in filled
    assert hostile.subject == subject  # a subject has no slots at all


def test_each_render_has_its_own_nonce_and_the_stored_line_comes_first() -> None:
    first, second = _render("a"), _render("a")
    assert first.html.startswith("tidings-slots:1:") and first.text.startswith("tidings-slots:1:")
    assert first.html.split("\n", 1)[0] != second.html.split("\n", 1)[0]
    # A part stored without the slot line (or with it anywhere but first) has no slot.
    body = first.html.split("\n", 1)[1]
    assert SlotTemplate.load(body).names == ()
    assert SlotTemplate.load("<p>x</p>\n" + first.html).names == ()


def test_a_nonce_found_in_content_is_drawn_again() -> None:
    taken, free = "ab" * 16, "cd" * 16
    draws = iter([taken, free])
    markers = SlotMarkers.absent_from([f"text {taken.upper()} text"], draw=lambda: next(draws))
    assert markers.nonce == free
    with pytest.raises(ValueError, match="32 lowercase hex"):
        SlotMarkers.absent_from([], draw=lambda: "ZZ")


def test_markers_split_once_and_fill_in_order() -> None:
    markers = SlotMarkers.absent_from([])
    marked = markers.personal()
    body = f"a{marked.email}b{marked.view_url}c ZZtidings_{GUESSED_NONCE}_email_ZZ"
    template = SlotTemplate.load(markers.stored(body))
    assert template.names == ("email", "view_url")
    assert template.fill({"email": "E", "view_url": "V"}) == (
        f"aEbVc ZZtidings_{GUESSED_NONCE}_email_ZZ"
    )


def test_a_template_that_alters_a_personal_value_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "email" / "digest"
    folder.mkdir(parents=True)
    (folder / "body.txt").write_text("Hello {{ personal.greeting_name|upper }}\n")
    with pytest.raises(TemplateAltersSlot, match="show it as it is"):
        _render("x", tmp_path)


def test_a_subject_template_cannot_use_personal_values(tmp_path: Path) -> None:
    folder = tmp_path / "email" / "digest"
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text("News for {{ personal.email }}")
    with pytest.raises(UndefinedError, match="same for every reader"):
        _render("x", tmp_path)


def _mail(html: str, text: str) -> EditionMail:
    return EditionMail(
        settings=SETTINGS,
        edition_id=7,
        slug="daily",
        newsletter_name="The Daily Messenger",
        from_name="The Messenger",
        from_address="digest@messenger.example.ge",
        reply_to=None,
        subject="Today",
        html=html,
        text=text,
        date=NOW,
    )


def test_public_html_has_no_reader_data_and_no_marker() -> None:
    rendered = _render(HOSTILE)
    nonce = rendered.html.split("\n", 1)[0].rsplit(":", 1)[1]
    public = _mail(rendered.html, rendered.text).public_html()
    assert nonce not in public and "tidings-slots:1:" + nonce not in public
    # The greeting, the address and the personal links are taken out, not neutralised.
    assert "Hello" not in public and 'href="#"' not in public and "/archive/daily/7" not in public
    assert "signed up" not in public and "Unsubscribe" not in public
    assert HOSTILE in public  # content's placeholder text stays as written


def test_editions_stored_with_the_old_tokens() -> None:
    """Sent as written (their tokens cannot be told from content), shown neutral in the
    archive."""
    html = '<p>Hello ZZtidings_greeting_name_ZZ</p><a href="ZZtidings_unsubscribe_url_ZZ">x</a>'
    mail = _mail(html, "Hello ZZtidings_greeting_name_ZZ")
    message = mail.message_for(41, "nino@example.ge", "Nino", "<m@x>")
    assert b"nino@example.ge" not in message.split(b"\r\n\r\n", 1)[1]
    assert mail.public_html() == ""
