"""A hostile internet and careless data against the digest: feed pictures that would make
every reader's mail client reach a private network, and feed or editor text long enough to
break the plain-text part's line limit. Real parts: a local feed server and both databases
where anything is stored."""

import email
import email.policy
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from tests.feedserver import FeedServer, Reply, feed_server
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.compose.render import RenderedEdition, render_edition
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Article, Newsletter
from tidings.ingest.drafts import BYLINE_LIMIT, SECTION_LIMIT
from tidings.ingest.images import image_url
from tidings.ingest.service import poll_sources
from tidings.mail.edition import EditionMail
from tidings.mail.message import MessageTemplate, Personalised
from tidings.mail.templates import email_environment, load_triplet

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)

# Pictures

#: Hosts a browser (the WHATWG URL standard) reads as an IPv4 address because the last label
#: is a number, in hexadecimal too: "127.0.0.0x1" is 127.0.0.1 to every web-based mail client.
HEX_NUMBER_HOSTS = [
    "127.0.0.0x1",
    "0x7f.0.0.0x1",
    "10.0.0.0X1",
    "192.168.0.0x1",
    "169.254.169.0xfe",
    "a.b.0x",
]


@pytest.mark.parametrize("host", HEX_NUMBER_HOSTS)
def test_a_picture_host_whose_last_label_is_a_hex_number_is_refused(host: str) -> None:
    assert image_url(f"http://{host}/picture.jpg") is None
    assert image_url(f"https://{host}:8443/picture.jpg") is None


@pytest.mark.parametrize("host", ["img.0xcafe.example", "0x1.example.org", "cdn.x0.example"])
def test_hex_looking_labels_before_the_last_stay_names(host: str) -> None:
    assert image_url(f"https://{host}/picture.jpg") == f"https://{host}/picture.jpg"


@pytest.fixture
def feed_settings(settings: Settings) -> Settings:
    """The feed server listens on loopback: the feed address itself is allowed."""
    return settings.model_copy(update={"feed_allow_private": True})


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with feed_server() as running:
        yield running


def _rss_item(n: int, picture: str) -> str:
    return (
        f"<item><title>Story {n}</title>"
        f"<link>https://messenger.example.ge/story/{n}</link><guid>story-{n}</guid>"
        f"<description>Summary {n}.</description>"
        f'<media:content url="{picture}" medium="image" width="800" height="450"/>'
        f'<content:encoded><![CDATA[<p>Text</p><img src="{picture}" width="800" '
        'height="450">]]></content:encoded></item>'
    )


def test_a_feed_cannot_store_a_picture_on_a_hex_spelled_private_address(
    db: Database, feed_settings: Settings, server: FeedServer
) -> None:
    items = "".join(_rss_item(n, f"http://{host}/p.jpg") for n, host in enumerate(HEX_NUMBER_HOSTS))
    items += _rss_item(99, "https://img.messenger.example.ge/p.jpg")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        "<title>The Messenger</title><link>https://messenger.example.ge/</link>"
        f"<description>News</description>{items}</channel></rss>"
    ).encode()
    server.routes["/rss"] = Reply(200, body, {"Content-Type": "application/rss+xml"})
    create_newsletter(
        db,
        NewsletterSpec(
            slug="daily", name="Daily", sender="D <d@example.org>", feeds=[server.url("/rss")]
        ),
        allow_private=True,
    )
    (outcome,) = poll_sources(db, feed_settings)
    assert outcome.error is None, outcome.error
    with db.session() as session:
        stored = {a.guid: a.image_url for a in session.scalars(select(Article))}
    assert stored.pop("story-99") == "https://img.messenger.example.ge/p.jpg"
    assert len(stored) == len(HEX_NUMBER_HOSTS)
    assert set(stored.values()) == {None}


# The plain-text part's lines

#: RFC 5322's limit on a line, CRLF not counted: the text part keeps to it once decoded too
#: (a relay that turns quoted-printable into 8bit would otherwise break the mail).
LINE_OCTETS = 998


def _newsletter(**overrides: Any) -> Newsletter:
    values: dict[str, Any] = {
        "slug": "daily",
        "name": "The Daily Messenger",
        "from_name": "The Messenger",
        "from_address": "digest@messenger.example.ge",
        "reply_to": None,
        "schedule_cron": "0 8 * * *",
        "timezone": "Asia/Tbilisi",
        "template_set": "digest",
        "show_images": True,
        "postal_address": None,
        "footer_text": None,
        "utm_source": None,
    }
    values.update(overrides)
    return Newsletter(**values)


def _article(n: int, **fields: Any) -> Article:
    values: dict[str, Any] = {
        "id": n,
        "title": f"Story {n}",
        "url": f"https://messenger.example.ge/{n}",
        "byline": "By Messenger Staff",
        "section": "Politics",
        "summary": f"Summary {n}.",
        "published_at": NOW - timedelta(hours=n),
    }
    values.update(fields)
    return Article(**values)


def _text_part(settings: Settings, rendered: RenderedEdition) -> str:
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
    raw = mail.message_for(41, "nino@example.ge", "Nino", "<m@example.ge>")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_long_bylines_sections_and_a_long_address_keep_text_lines_within_998_octets(
    settings: Settings,
) -> None:
    # A feed's byline and category are not bounded (a whole author bio, a keyword dump), and
    # a Georgian postal address of six full lines is 2,000 octets on one line.
    georgian = "ქ" * 119
    newsletter = _newsletter(
        name="მესენჯერი " * 19,
        postal_address="\n".join([georgian] * 6),
        footer_text="ფ" * 1000,
    )
    articles = [
        _article(0, byline="ავტორი " * 300, section="განყოფილება " * 200),
        _article(1, byline="B" * 3000, section="S" * 3000),
        _article(2, section=None, byline="Staff " * 400),
    ]
    templates = load_triplet(email_environment(None), "digest")
    rendered = render_edition(templates, newsletter, articles, issued_at=NOW)
    text = _text_part(settings, rendered)
    too_long = [line[:40] for line in text.split("\n") if len(line.encode()) > LINE_OCTETS]
    assert too_long == []
    # Nothing was lost: every byline, section and address line is still there, wrapped.
    joined = "".join(text.split())
    assert "B" * 3000 in joined and "S" * 3000 in joined
    assert georgian * 6 in joined.replace(",", "")


# Address headers

#: Display names as publishers and readers write them: non-ASCII with the address list's
#: specials (a colon or comma after a Georgian word made the email package's folder write a
#: group and two mailboxes: a From header Gmail refuses), quotes, brackets, "=?", long ones.
NAMES = [
    "მესენჯერი: დღის ამბები",
    "ნ News: Tbilisi, Georgia",
    "The Messenger (ნ) <daily>",
    'ნინო; "x" @ y',
    "ნ [x]",
    "Daily ნ, Inc.",
    "Messenger ?= News =?",
    "=?utf-8?q?Bcc=3A_x?=",
    "ნb:)b : .ნ>😀 ?=b,[bb\\\\=?",
    '@"' + "x" * 70 + ",>=?;=? a=?",
    ("ნინო " * 40).strip(),
    'Nino "the reader" Beridze, Jr.',
    "The Daily Messenger of Tbilisi and the Whole South Caucasus Region Every Single Morning",
    "X" * 120,
    '"' + "Y" * 120 + '"',
    "Nino\\",
]


def _one_mailbox(raw: bytes, header: str) -> tuple[str, str]:
    """The header's single mailbox (display name, address); fails on any other shape.

    Python's address parser puts a space between adjacent encoded words (RFC 2047 joins
    them without one), so the name's exact spelling is read with the RFC's decoder."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    lines = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert all(len(line) <= 78 for line in lines), [line for line in lines if len(line) > 78]
    (mailbox,) = message[header].addresses
    assert not message[header].defects, message[header].defects
    folded = (b"\r\n" + raw).split(f"\r\n{header}: ".encode(), 1)[1]
    value = re.split(rb"\r\n(?! )", folded, maxsplit=1)[0].replace(b"\r\n", b"").decode()
    decoded = str(make_header(decode_header(value)))
    name = mailbox.display_name
    if not value.startswith('"'):
        name = decoded.rsplit(" <", 1)[0]
        assert "".join(name.split()) == "".join(mailbox.display_name.split())
    return name, mailbox.addr_spec


@pytest.mark.parametrize("name", NAMES)
def test_a_senders_and_a_readers_name_give_exactly_their_own_mailbox(name: str) -> None:
    template = MessageTemplate(
        from_name=name,
        from_address="digest@messenger.example.ge",
        reply_to=None,
        subject="Today",
        list_name=name,
        list_id="daily.messenger.example.ge",
        date=NOW,
    )
    raw = template.build(
        Personalised(
            to_email="nino@example.ge",
            to_name=name,
            message_id="<tidings.1.ab.2@messenger.example.ge>",
            unsubscribe_url="https://news.example.ge/u/TOKEN",
            unsubscribe_mailto="mailto:unsubscribe@messenger.example.ge?subject=x",
            html_qp=b"",
            text_qp=b"",
        )
    )
    assert raw.isascii()
    assert _one_mailbox(raw, "From") == (name, "digest@messenger.example.ge")
    assert _one_mailbox(raw, "To") == (name, "nino@example.ge")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(message["List-Id"]).endswith(" <daily.messenger.example.ge>")
    assert str(message["List-Id"]).count("<") == 1 or "<" in name


@pytest.mark.parametrize(
    "stored",
    [
        "http://127.0.0.0x1/p.jpg",  # stored before such hosts were refused at ingest
        "http://localhost/p.jpg",
        "http://10.0.0.7/p.jpg",
        "http://[::ffff:127.0.0.1]/p.jpg",
        "https://user:pw@img.messenger.example.ge/p.jpg",
    ],
)
def test_the_digest_never_shows_a_stored_picture_the_feed_rules_refuse(stored: str) -> None:
    lead = _article(0, image_url=stored, image_width=800, image_height=450, image_alt="A")
    templates = load_triplet(email_environment(None), "digest")
    rendered = render_edition(templates, _newsletter(), [lead, _article(1)], issued_at=NOW)
    assert "<img" not in rendered.html
    fine = _article(0, image_url="https://img.messenger.example.ge/p.jpg")
    fine.image_width, fine.image_height = 800, 450
    shown = render_edition(templates, _newsletter(), [fine, _article(1)], issued_at=NOW)
    assert 'src="https://img.messenger.example.ge/p.jpg"' in shown.html


# Feed text without bounds


def test_a_feeds_byline_and_section_are_bounded_when_stored(
    db: Database, feed_settings: Settings, server: FeedServer
) -> None:
    # A whole author biography as dc:creator and a keyword dump as the category would make
    # every copy heavy (and one such article too large for the 95 KB limit on its own).
    item = (
        "<item><title>Story 1</title><link>https://messenger.example.ge/story/1</link>"
        "<guid>story-1</guid><description>Summary.</description>"
        f"<dc:creator>{'Nino Beridze, ' * 2000}</dc:creator>"
        f"<category>{'Politics ' * 2000}</category></item>"
    )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        "<title>The Messenger</title><link>https://messenger.example.ge/</link>"
        f"<description>News</description>{item}</channel></rss>"
    ).encode()
    server.routes["/rss"] = Reply(200, body, {"Content-Type": "application/rss+xml"})
    create_newsletter(
        db,
        NewsletterSpec(
            slug="daily", name="Daily", sender="D <d@example.org>", feeds=[server.url("/rss")]
        ),
        allow_private=True,
    )
    (outcome,) = poll_sources(db, feed_settings)
    assert outcome.error is None, outcome.error
    with db.session() as session:
        (article,) = session.scalars(select(Article))
        byline, section = article.byline, article.section
    assert byline is not None and section is not None
    assert byline.startswith("Nino Beridze, Nino") and len(byline) <= BYLINE_LIMIT
    assert section.startswith("Politics Politics") and len(section) <= SECTION_LIMIT


def test_captions_under_every_prefix_a_feed_binds_to_media_rss_are_ignored(
    db: Database, feed_settings: Settings, server: FeedServer
) -> None:
    # The caption rename is one pass over the document whatever the number of prefixes
    # (bench/feed_media_prefixes.py: 2,000 prefixes cost 190 times a single one before);
    # here: it still finds each bound prefix.
    bound = "".join(f' xmlns:m{i}="http://search.yahoo.com/mrss/"' for i in range(300))
    items = "".join(
        f"<item><title>Story {n}</title><link>https://messenger.example.ge/story/{n}</link>"
        f"<guid>story-{n}</guid><m{n * 100}:description>Caption {n}</m{n * 100}:description>"
        f"<description>Summary {n}.</description></item>"
        for n in range(3)
    )
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"{bound}><channel>'
        "<title>The Messenger</title><link>https://messenger.example.ge/</link>"
        f"<description>News</description>{items}</channel></rss>"
    ).encode()
    server.routes["/rss"] = Reply(200, body, {"Content-Type": "application/rss+xml"})
    create_newsletter(
        db,
        NewsletterSpec(
            slug="daily", name="Daily", sender="D <d@example.org>", feeds=[server.url("/rss")]
        ),
        allow_private=True,
    )
    (outcome,) = poll_sources(db, feed_settings)
    assert outcome.error is None, outcome.error
    with db.session() as session:
        summaries = {a.guid: a.summary for a in session.scalars(select(Article))}
    assert summaries == {
        "story-0": "Summary 0.",
        "story-1": "Summary 1.",
        "story-2": "Summary 2.",
    }
