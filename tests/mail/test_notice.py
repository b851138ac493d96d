"""Transactional mail: a visitor's name and a newsletter's name are shown as written, never
read as a template, a placeholder or a format string."""

import html

from tests.compose.slots import PLACEHOLDERS
from tests.smtpserver import Caught
from tidings.config import Settings
from tidings.db.models import Newsletter
from tidings.mail.notice import Notice, notice_message

HOSTILE = " ".join(PLACEHOLDERS) + " {{ confirm_url }} {confirm_url} $confirm_url"
CONFIRM_URL = "https://news.example.ge/confirm/TOKEN-C"


def test_confirmation_shows_hostile_names_as_written() -> None:
    settings = Settings(secret_key="notice-test-secret-key-" + "x" * 32)
    newsletter = Newsletter(
        slug="daily",
        name=f"Messenger {HOSTILE}"[:200],
        from_name="The Messenger",
        from_address="digest@messenger.example.ge",
        reply_to=None,
    )
    notice = Notice("The Messenger", "digest@messenger.example.ge", None, "nino@example.ge", None)
    context = {
        "newsletter": newsletter,
        "name": f"Nino {HOSTILE}",
        "email": "nino@example.ge",
        "confirm_url": CONFIRM_URL,
    }
    message = Caught("", [], notice_message(settings, "confirm", notice, context)).message
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    shown_html = html.unescape(html_part.get_content())
    text = text_part.get_content()
    for body in (shown_html, text):
        assert f"Nino {HOSTILE}" in " ".join(body.split())
        assert body.count(CONFIRM_URL) == (2 if body is shown_html else 1)  # button, link
        assert body.count("nino@example.ge") == 1
    assert message["Subject"].strip().endswith(newsletter.name.strip())
