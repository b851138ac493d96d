"""Sending safely, the domain side, on both databases: the recipient count and fan-out share
one rule; a test send is marked, personalised and harmless; a scheduled edition changes
until it starts; a Markdown intro keeps its lists and links in the text part."""

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlalchemy import select, update

from tests.builders import articles, newsletter, subscribers
from tests.conftest import Cli
from tidings.audience.service import add_subscriber
from tidings.audience.suppressions import suppress
from tidings.compose.lifecycle import send_draft_now
from tidings.compose.oneoff import (
    NO_NEW_ARTICLES,
    TEST_READER,
    DraftChanges,
    one_off_edition,
    plan_one_off,
    preview,
    proof,
    scheduled_draft,
    send_one_off,
)
from tidings.compose.render import intro_to_text
from tidings.compose.sendtime import change_scheduled, plan_edition, schedule_at
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, Edition, Subscription
from tidings.db.types import utcnow
from tidings.deliver.ledger.fanout import recipient_count
from tidings.errors import Conflict, InvalidInput, NotFound
from tidings.mail.edition import TEST_BANNER_TEXT, TEST_UNSUBSCRIBE_PATH

INTRO = """Good evening. Read [the budget story](https://messenger.example.ge/budget) first.

- Panjikidze meets envoys
- Abashidze on the [new bridge](https://messenger.example.ge/bridge)

1. one
2. two
"""


def _readers(db: Database) -> None:
    """Five readers: three active, one active but suppressed, one pending."""
    newsletter(db)
    articles(db, "daily", 3, datetime.now(UTC) - timedelta(hours=2))
    subscribers(db, "daily", 4)
    add_subscriber(db, "daily", "pending@example.ge", "Pending", confirmed=False, source="test")
    suppress(db, "reader3@example.ge", "bounced")


def _parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_the_count_shown_is_the_count_fanned_out(db: Database, settings: Settings) -> None:
    _readers(db)
    plan = plan_one_off(db, settings, "daily", OneOff(article_ids=[]))
    assert plan.recipients == 3 and plan.articles == 3
    with db.session() as session:
        newsletter_id = session.scalars(select(Subscription.newsletter_id)).first()
        assert newsletter_id is not None
        # A section nobody chose still reaches those who chose none; one chose Culture only.
        session.execute(
            update(Subscription)
            .where(Subscription.subscriber_id.in_(select(Subscription.subscriber_id).limit(1)))
            .values(sections=["Culture"])
        )
        session.commit()
        assert recipient_count(session, newsletter_id, ["Politics"]) == 2
        assert recipient_count(session, newsletter_id, ["Culture"]) == 3
    sent = send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    assert sent.deliveries == 2  # Politics articles: the Culture-only reader is left out
    with db.session() as session:
        assert len(session.scalars(select(Delivery.id)).all()) == 2


def test_a_schedule_plan_reads_the_time_in_the_newsletter_zone(
    db: Database, settings: Settings
) -> None:
    _readers(db)
    plan = plan_edition(db, settings, "daily", OneOff(article_ids=[]), "2099-03-01T09:00")
    assert plan.send_at == datetime(2099, 3, 1, 5, 0, tzinfo=UTC)  # Tbilisi is UTC+4
    with pytest.raises(InvalidInput, match="in the past"):
        plan_edition(db, settings, "daily", OneOff(article_ids=[]), "2000-01-01T09:00")
    with db.session() as session:
        assert session.scalars(select(Edition.id)).all() == []  # a plan stores nothing


def test_a_test_send_is_marked_personalised_and_harmless(db: Database, settings: Settings) -> None:
    _readers(db)
    one_off = OneOff(article_ids=[], subject="Evening extra")
    made = proof(db, settings, "daily", one_off, "Reader1@example.ge")
    first, second = _parsed(made.message()), _parsed(made.message())
    assert first["Subject"] == "[Test] Evening extra"
    assert first["Message-ID"] != second["Message-ID"]
    for message in (first, second):
        assert message["Message-ID"].endswith("@messenger.example.ge>")
        assert "tidings.invalid" not in message["Message-ID"]
    text, html = _parts(first)
    assert text.startswith("*** TEST *** " + TEST_BANNER_TEXT)
    assert TEST_BANNER_TEXT in html and html.index(TEST_BANNER_TEXT) < html.index("Story")
    assert "Hello Reader," in text and "reader1@example.ge" in text  # the reader the editor chose
    harmless = settings.base_url + TEST_UNSUBSCRIBE_PATH
    assert f"<{harmless}>" in first["List-Unsubscribe"]
    assert "/u/" not in text + html + first["List-Unsubscribe"]  # no reader's token at all
    assert "/preferences/" not in text + html
    fake = proof(db, settings, "daily", one_off, "")
    assert fake.to_email == TEST_READER[1] and "Hello Test," in _parts(_parsed(fake.message()))[0]
    with pytest.raises(NotFound, match="not subscribed"):
        proof(db, settings, "daily", one_off, "stranger@example.ge")
    shown = preview(db, settings, "daily", one_off, None)
    assert "preview@tidings.invalid" not in shown.message.decode()
    assert _parsed(shown.message)["Message-ID"].endswith("@messenger.example.ge>")


def test_no_new_articles_is_a_sentence_without_cli_advice(db: Database, settings: Settings) -> None:
    newsletter(db)
    with pytest.raises(InvalidInput) as refused:
        plan_one_off(db, settings, "daily", OneOff(article_ids=[]))
    assert str(refused.value) == NO_NEW_ARTICLES
    assert "--" not in NO_NEW_ARTICLES and "Choose at least one article." in NO_NEW_ARTICLES


def test_a_scheduled_edition_changes_until_it_starts(db: Database, settings: Settings) -> None:
    _readers(db)
    ids = articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    edition_id = schedule_at(
        db, settings, "daily", OneOff(article_ids=ids, subject="Old"), "2099-01-01T08:00"
    )
    change_scheduled(
        db,
        settings,
        edition_id,
        DraftChanges(subject="New subject", intro_markdown=INTRO, article_ids=ids[::-1]),
        "2099-02-01T10:30",
    )
    draft = scheduled_draft(db, edition_id)
    assert draft.subject == "New subject" and draft.intro_markdown == INTRO
    assert draft.article_ids == ids[::-1]
    assert draft.scheduled_for == datetime(2099, 2, 1, 6, 30, tzinfo=UTC)
    with db.session() as session:
        edition = session.get_one(Edition, edition_id)
        assert edition.text_body is not None and "- Panjikidze meets envoys" in edition.text_body
    # Only what is given changes.
    change_scheduled(db, settings, edition_id, DraftChanges(subject=""))
    kept = scheduled_draft(db, edition_id)
    assert kept.subject != "New subject" and kept.intro_markdown == INTRO
    assert kept.article_ids == ids[::-1]
    send_draft_now(db, settings, edition_id)
    with pytest.raises(Conflict, match=f"Edition {edition_id} is sending"):
        change_scheduled(db, settings, edition_id, DraftChanges(subject="Too late"))
    assert scheduled_draft(db, edition_id).subject == kept.subject


def test_a_markdown_intro_keeps_lists_and_links_in_the_text_part(
    db: Database, settings: Settings
) -> None:
    text = intro_to_text(INTRO)
    assert "Read the budget story <https://messenger.example.ge/budget> first." in " ".join(
        text.split()
    )
    assert all(len(line) <= 72 for line in text.splitlines())
    assert "- Panjikidze meets envoys\n- Abashidze on the new bridge" in text
    assert "<https://messenger.example.ge/bridge>" in text
    assert "1. one\n2. two" in text
    long_url = "https://messenger.example.ge/" + "very-long-path-" * 8
    wrapped = intro_to_text(f"See [this]({long_url}) for the whole of the long story today.")
    assert f"<{long_url}>" in wrapped  # a link is never broken across lines
    newsletter(db)
    articles(db, "daily", 1, datetime.now(UTC) - timedelta(hours=1))
    with db.session() as session:
        _, _, edition = one_off_edition(
            session, settings, "daily", OneOff(article_ids=[], intro_markdown=INTRO), utcnow()
        )
    assert edition.text_body is not None and "- Panjikidze meets envoys" in edition.text_body
    assert "<https://messenger.example.ge/budget> first." in edition.text_body


def test_the_cli_adds_its_flag_to_the_sentence(db: Database, cli: Cli) -> None:
    newsletter(db)
    refused = cli("digest", "preview", "daily")
    assert refused.exit_code == 1
    assert f"{NO_NEW_ARTICLES} Give one with --article ID." in refused.output
