"""The newsletter's reader settings (postal address, footer text) against bad intentions and
honest text in other scripts: what hides or reorders what readers see is refused, what a
language needs to be spelt right is kept. Stored on both databases."""

from dataclasses import replace

import pytest

from tidings.catalog.newsletters import (
    NewsletterSpec,
    SettingsRefused,
    change_newsletter,
    create_newsletter,
)
from tidings.db.engine import Database

#: Persian needs the zero-width non-joiner inside words ("می‌خواهید": "you want"), and emoji
#: sequences are joined by the zero-width joiner (a family, a rainbow flag).
PERSIAN_FOOTER = "این خبرنامه را می‌خوانید چون عضو شده‌اید. 👨‍👩‍👧 🏳️‍🌈"
PERSIAN_ADDRESS = "خیابان ولی‌عصر، پلاک ۱۲\nTehran"


def _spec() -> NewsletterSpec:
    return NewsletterSpec(
        slug="daily",
        name="Daily",
        sender="Daily <daily@example.org>",
        schedule="0 7 * * *",
        timezone="Asia/Tehran",
    )


def test_joiners_that_spell_words_and_emoji_are_kept(db: Database) -> None:
    created = create_newsletter(
        db, replace(_spec(), footer_text=PERSIAN_FOOTER, postal_address=PERSIAN_ADDRESS)
    )
    assert (created.footer_text, created.postal_address) == (PERSIAN_FOOTER, PERSIAN_ADDRESS)
    changed = change_newsletter(db, "daily", {"footer_text": None, "postal_address": "ولی‌عصر"})
    assert (changed.footer_text, changed.postal_address) == (None, "ولی‌عصر")


@pytest.mark.parametrize(
    "hidden",
    ["\u202e", "\u202a", "\u2066", "\u2069", "\u200b", "\ufeff", "\u00ad", "\x00", "\t"],
)
def test_what_hides_or_reorders_text_is_still_refused(db: Database, hidden: str) -> None:
    create_newsletter(db, _spec())
    for field in ("footer_text", "postal_address"):
        with pytest.raises(SettingsRefused) as refused:
            change_newsletter(db, "daily", {field: f"Paid by {hidden}Acme"})
        assert "invisible control character" in refused.value.problems[field]
