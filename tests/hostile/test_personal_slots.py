"""Content can never fill a personal slot: placeholders in every article field (from a real
feed server, the CLI and the API), in the intro, the subject, the newsletter's name and a
reader's name reach each reader as written, and a reader's address and token links appear
only where the template put them. Real SMTP and web servers, on both databases."""

import asyncio
import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import httpx
import pytest
from sqlalchemy import select

from tests.builders import SENDER, newsletter
from tests.compose.slots import (
    NAMES,
    SLOT_LINE,
    TRACKER,
    Slots,
    article_fields,
    assert_only_in_slots,
    assert_parts_only_in_slots,
    intro_markdown,
    parts,
    sentence,
    subject,
)
from tests.conftest import Cli
from tests.feedserver import Reply, feed_server
from tests.ingest.feeds import rss
from tests.smtpserver import RecordingHandler, smtp_server
from tests.webserver import web_server
from tidings.access.apitokens import create_token
from tidings.audience.service import add_subscriber
from tidings.compose.oneoff import TEST_READER
from tidings.compose.proofs import send_proofs
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Article, Edition, UserRole
from tidings.deliver.runner import run_worker
from tidings.ingest.drafts import BYLINE_LIMIT, SECTION_LIMIT
from tidings.ingest.service import poll_sources
from tidings.mail.edition import TEST_UNSUBSCRIBE_PATH
from tidings.schedule.slots import serve_due_slots
from tidings.text import shorten

#: One plain reader, and one whose own name is a placeholder.
READERS = [("nino@example.ge", "Nino Beridze"), ("giorgi@example.ge", "Giorgi ZZtidings_email_ZZ")]
NEWSLETTER_NAME = "The ZZtidings_preferences_url_ZZ Messenger"


def _subscribe(db: Database, slug: str = "daily") -> None:
    for email, name in READERS:
        add_subscriber(db, slug, email, name, confirmed=True, source="test")


def _article_literals(fields: dict[str, str]) -> list[str]:
    """The fields as stored, so as every copy must show them: the byline and the section
    kept to their limits (a feed's author biography weighs on every copy)."""
    return [
        fields["url"],
        fields["title"],
        shorten(fields["author"], BYLINE_LIMIT),
        shorten(fields["section"], SECTION_LIMIT),
        fields["summary"],
    ]


def _stored_nonce(db: Database, edition_id: int) -> str:
    """The slot nonce of a stored edition (a string no body has, if none was stored)."""
    with db.session() as session:
        stored = session.get_one(Edition, edition_id).html_body or ""
    found = SLOT_LINE.match(stored)
    return found.group(1) if found else "no slot line was stored"


def _send(db: Database, settings: Settings, smtp_port: int, expected: int) -> None:
    live = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{smtp_port}"})
    stats = asyncio.run(run_worker(db, live, drain=True, stop=asyncio.Event()))
    assert stats.sent == expected


def _to(smtp: RecordingHandler, address: str) -> Iterator[EmailMessage]:
    return (c.message for c in smtp.caught if c.rcpt_tos == [address])


def _assert_every_reader(
    smtp: RecordingHandler, db: Database, edition_id: int, literals: list[str]
) -> list[EmailMessage]:
    nonce = _stored_nonce(db, edition_id)
    messages = []
    for email, name in READERS:
        (message,) = _to(smtp, email)
        assert_only_in_slots(message, (email, name), literals, nonce)
        messages.append(message)
    return messages


def _assert_archive(base: str, edition_id: int, nonce: str, literals: list[str]) -> None:
    """The public copy: the literals as written, no reader's data, no slot marker."""
    page = httpx.get(f"{base}/archive/daily/{edition_id}")
    assert page.status_code == 200
    shown = html.unescape(page.text)
    for email, _ in READERS:
        assert email not in shown
    assert "/preferences/" not in shown and "/u/" not in shown
    assert nonce not in shown.lower()
    for literal in literals:
        assert literal in shown, literal


def _rss_item(n: int, now: datetime) -> dict[str, str]:
    fields = article_fields(n)
    return {
        "title": escape(fields["title"]),
        "link": escape(fields["url"]),
        "guid": f"story-{n}",
        "dc:creator": escape(fields["author"]),
        "category": escape(fields["section"]),
        "description": escape(fields["summary"]),
        "pubDate": format_datetime(now - timedelta(minutes=60 + n)),
        "content": fields["content_html"],
    }


def test_feed_placeholders_reach_every_reader_as_written(
    cli: Cli, db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: an RSS link that asks for each reader's address and links."""
    monkeypatch.setenv("TIDINGS_FEED_ALLOW_PRIVATE", "true")  # the feed server is on loopback
    now = datetime.now(UTC)
    with feed_server() as feeds, smtp_server() as (smtp, port), web_server(settings, db) as base:
        live = settings.model_copy(update={"base_url": base, "feed_allow_private": True})
        feeds.routes["/feed.xml"] = Reply(200, rss([_rss_item(n, now) for n in range(2)]))
        created = cli(
            "newsletter", "create", "daily", "--name", NEWSLETTER_NAME, "--from", SENDER,
            "--schedule", "*/30 * * * *", "--feed", feeds.url("/feed.xml"),
        )  # fmt: skip
        assert created.exit_code == 0, created.output
        _subscribe(db)
        assert poll_sources(db, live)[0].counts.new == 2
        (outcome,) = serve_due_slots(db, live, now)
        assert outcome.result.deliveries == len(READERS)
        _send(db, live, port, len(READERS))

        literals = [NEWSLETTER_NAME, *_article_literals(article_fields(0))]
        literals += _article_literals(article_fields(1))
        edition_id = outcome.result.edition_id
        for message in _assert_every_reader(smtp, db, edition_id, literals):
            assert (
                "/track?who=ZZtidings_email_ZZ&prefs=ZZtidings_preferences_url_ZZ"
                in (parts(message)[0])
            )
        _assert_archive(base, edition_id, _stored_nonce(db, edition_id), literals[1:3])


def _cli_push(cli: Cli, tmp_path: Path) -> list[str]:
    """One article by ``articles add``, one (with content HTML) by ``articles import``."""
    added, imported = article_fields(1), article_fields(2)
    result = cli(
        "articles", "add", "--newsletter", "daily", "--url", added["url"],
        "--title", added["title"], "--summary", added["summary"],
        "--author", added["author"], "--section", added["section"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    file = tmp_path / "articles.json"
    file.write_text(json.dumps([imported]), encoding="utf-8")
    result = cli("articles", "import", str(file), "--newsletter", "daily")
    assert result.exit_code == 0 and "1 new" in result.stdout, result.output
    return _article_literals(added) + _article_literals(imported)


def test_cli_push_intro_and_subject_reach_readers_as_written(
    cli: Cli, db: Database, settings: Settings, tmp_path: Path
) -> None:
    newsletter(db)
    _subscribe(db)
    literals = [*_cli_push(cli, tmp_path), sentence("Intro"), "ZZtidings_unsubscribe_url_ZZ"]
    intro = tmp_path / "intro.md"
    intro.write_text(intro_markdown(), encoding="utf-8")
    sent = cli(
        "digest", "send", "daily", "--intro-file", str(intro), "--subject", subject(), "--no-wait"
    )
    assert sent.exit_code == 0, sent.output
    found = re.search(r"edition (\d+)", sent.stdout)
    assert found is not None
    with smtp_server() as (smtp, port):
        _send(db, settings, port, len(READERS))
        for message in _assert_every_reader(smtp, db, int(found.group(1)), literals):
            # (Python's folder may start the value on a continuation line: one leading space.)
            assert message["Subject"].strip() == subject()
            assert "https://example.net/?p=ZZtidings_preferences_url_ZZ" in parts(message)[0]

        # A proof goes to an editor as a sample reader would get it: no slot from content.
        with db.session() as session:
            article_ids = list(session.scalars(select(Article.id).order_by(Article.id)))
        one_off = OneOff(article_ids, intro_markdown(), subject())
        live = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        (proof,) = asyncio.run(send_proofs(db, live, "daily", one_off, "editor@example.ge"))
        assert proof.error is None
        (message,) = _to(smtp, "editor@example.ge")
        # A proof is a test: personalised for a test reader, its unsubscribe links lead to
        # the harmless test page (no reader's token), in the template's own places.
        html_text, text = parts(message)
        assert message["Subject"].strip() == "[Test] " + subject()
        harmless = settings.base_url + TEST_UNSUBSCRIBE_PATH
        for body, counts in ((html_text, Slots.of_digest().html), (text, Slots.of_digest().text)):
            assert body.count(TEST_READER[1]) == counts["email"]
            assert body.count("Hello Test,") == counts["greeting"]
            assert body.count(harmless) == counts["unsubscribe_url"] + counts["preferences_url"]
            assert "/u/" not in body and "/preferences/" not in body
        for literal in literals:
            assert literal in html_text, f"not as written in the HTML part: {literal}"

    # The preview an editor writes to a file, personalised for one real reader.
    output = tmp_path / "preview.html"
    shown = cli(
        "digest", "preview", "daily", "--subscriber", READERS[0][0], "-o", str(output),
        "--intro-file", str(intro), "--subject", subject(),
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert f"subject: {subject()}" in shown.stdout
    written = html.unescape(output.read_text(encoding="utf-8"))
    assert written.count(READERS[0][0]) == Slots.of_digest().html["email"]
    assert sentence("Intro") in written and "/track?who=ZZtidings_email_ZZ&" in written


@pytest.fixture
def editor_api(db: Database, settings: Settings) -> Iterator[tuple[httpx.Client, str]]:
    newsletter(db)
    _subscribe(db)
    _, secret = create_token(db, "CMS", UserRole.editor, "test")
    with web_server(settings, db) as base:
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=f"{base}/api/v1", headers=headers) as client:
            yield client, base


def _api_push(client: httpx.Client, fields: dict[str, str]) -> None:
    pushed = client.post("/newsletters/daily/articles", json={"articles": [fields]})
    assert pushed.status_code == 200 and pushed.json()["new"] == 1, pushed.text


def _api_send(client: httpx.Client) -> int:
    created = client.post(
        "/editions",
        json={"newsletter": "daily", "intro_markdown": intro_markdown(), "subject": subject()},
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def test_api_push_and_markers_of_an_earlier_edition_stay_literal(
    db: Database, settings: Settings, editor_api: tuple[httpx.Client, str]
) -> None:
    """An editor who has seen a stored edition copies its slot markers into the next
    article: they are that edition's, and mean nothing in any other."""
    client, base = editor_api
    first_fields = article_fields(1)
    _api_push(client, first_fields)
    preview = client.post(
        "/newsletters/daily/preview",
        json={"intro_markdown": intro_markdown(), "subject": subject()},
    )
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert shown["subject"] == subject()
    literals = _article_literals(first_fields)
    sample: tuple[str, str | None] = ("reader@example.org", None)  # greeted without a name
    assert_parts_only_in_slots(html.unescape(shown["html"]), shown["text"], sample, literals)

    first = _api_send(client)
    with smtp_server() as (smtp, port):
        _send(db, settings, port, len(READERS))
        _assert_every_reader(smtp, db, first, literals)

        seen = _stored_nonce(db, first)
        copied = " ".join(f"ZZtidings_{seen}_{name}_ZZ" for name in NAMES)
        second_fields = article_fields(2) | {
            "title": f"Copied {copied}",
            "summary": f"tidings-slots:1:{seen} {copied}",
            "url": f"{TRACKER}&copied=ZZtidings_{seen}_email_ZZ",
        }
        _api_push(client, second_fields)
        smtp.caught.clear()
        second = _api_send(client)
        assert _stored_nonce(db, second) != seen
        _send(db, settings, port, len(READERS))
        _assert_every_reader(smtp, db, second, _article_literals(second_fields))
    _assert_archive(base, second, _stored_nonce(db, second), [f"Copied {copied}"])
    feed = httpx.get(f"{base}/archive/daily/feed.atom")
    assert feed.status_code == 200 and f"<title>{escape(subject())}</title>" in feed.text
