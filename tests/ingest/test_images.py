"""Article pictures come from what the feed carries (media:content, media:thumbnail, image
enclosures, the first picture of the content), with their size and words; a URL that would
make a mail client reach a private network, or that names no proper host, is never kept."""

import hashlib
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select

from tests.feedserver import FeedServer, Reply, feed_server
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Article, Newsletter
from tidings.ingest.drafts import make_draft
from tidings.ingest.images import ArticleImage, image_url, side
from tidings.ingest.service import poll_sources

RSS_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" '
    'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
    "<title>The Messenger</title><link>https://messenger.example.ge/</link>"
    "<description>News</description>"
)


def _rss(*items: str) -> bytes:
    return (RSS_HEAD + "".join(items) + "</channel></rss>").encode()


def _item(n: int, extra: str = "", title: str = "") -> str:
    return (
        f"<item><title>{title or f'Story {n}'}</title>"
        f"<link>https://messenger.example.ge/story/{n}</link><guid>story-{n}</guid>"
        f"<description>Summary {n}.</description>{extra}</item>"
    )


def _content(html: str) -> str:
    return f"<content:encoded><![CDATA[{html}]]></content:encoded>"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The feed server listens on loopback: these tests allow private feed addresses."""
    return settings.model_copy(update={"feed_allow_private": True})


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with feed_server() as running:
        yield running


def _poll(db: Database, settings: Settings, server: FeedServer, body: bytes) -> dict[str, Article]:
    server.routes["/rss"] = Reply(200, body, {"Content-Type": "application/rss+xml"})
    with db.session() as session:
        exists = session.scalar(select(Newsletter.id)) is not None
    if not exists:
        create_newsletter(
            db,
            NewsletterSpec(
                slug="daily", name="Daily", sender="D <d@example.org>", feeds=[server.url("/rss")]
            ),
            allow_private=True,
        )
    (outcome,) = poll_sources(db, settings)
    assert outcome.error is None, outcome.error
    with db.session() as session:
        return {a.guid: a for a in session.scalars(select(Article))}


def _image(article: Article) -> tuple[str | None, int | None, int | None, str | None]:
    return (article.image_url, article.image_width, article.image_height, article.image_alt)


def test_each_place_a_feed_puts_a_picture(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    media = (
        '<media:content url="https://img.messenger.example.ge/p/1.jpg" medium="image" '
        'width="800" height="450" type="image/jpeg"/>'
        '<media:thumbnail url="https://img.messenger.example.ge/t/1.jpg" width="120"/>'
    )
    video_then_thumb = (
        '<media:content url="https://video.messenger.example.ge/v.mp4" medium="video"/>'
        '<media:thumbnail url="https://img.messenger.example.ge/t/2.jpg" width="320" '
        'height="180"/>'
    )
    enclosure = '<enclosure url="https://img.messenger.example.ge/e/3.png" type="image/png"/>'
    audio = '<enclosure url="https://cdn.messenger.example.ge/a.mp3" type="audio/mpeg"/>'
    first_img = _content(
        '<p><img src="https://stats.example.ge/pixel.gif" width="1" height="1">'
        "Parliament met.</p>"
        '<img src="/uploads/4.jpg" width="640" height="360" alt="Rustaveli Avenue at dusk">'
        '<img src="https://img.messenger.example.ge/second.jpg">'
    )
    articles = _poll(
        db,
        settings,
        server,
        _rss(
            _item(1, media, title="Budget &#8220;passes&#8221;"),
            _item(2, video_then_thumb),
            _item(3, enclosure),
            _item(4, audio + first_img),
            _item(5),
        ),
    )
    # media:content: its size, and the title as its words (Media RSS captions are not read).
    assert _image(articles["story-1"]) == (
        "https://img.messenger.example.ge/p/1.jpg",
        800,
        450,
        "Budget \u201cpasses\u201d",
    )
    assert _image(articles["story-2"]) == (
        "https://img.messenger.example.ge/t/2.jpg",
        320,
        180,
        "Story 2",
    )
    assert _image(articles["story-3"]) == (
        "https://img.messenger.example.ge/e/3.png",
        None,
        None,
        "Story 3",
    )
    # The counting pixel is passed over; a relative src is read against the article's URL.
    assert _image(articles["story-4"]) == (
        "https://messenger.example.ge/uploads/4.jpg",
        640,
        360,
        "Rustaveli Avenue at dusk",
    )
    assert _image(articles["story-5"]) == (None, None, None, None)


def test_a_picture_on_a_private_or_improper_host_is_never_kept(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    bad_hosts = [
        "http://127.0.0.1/a.jpg",
        "http://10.0.0.7/a.jpg",
        "http://[::1]/a.jpg",
        "http://[::ffff:192.168.1.1]/a.jpg",
        "http://169.254.169.254/latest/meta-data.jpg",
        "http://localhost/a.jpg",
        "http://intranet/a.jpg",
        "http://printer.local/a.jpg",
        "http://2130706433/a.jpg",
        "https://user:secret@img.example.ge/a.jpg",
        "ftp://img.example.ge/a.jpg",
        "data:image/png;base64,iVBORw0KGgo=",
    ]
    items = [
        _item(n, f'<media:content url="{url.replace("&", "&amp;")}" medium="image"/>')
        for n, url in enumerate(bad_hosts, start=1)
    ]
    # A bad media picture does not hide a good picture further down the item.
    items.append(
        _item(
            99,
            '<media:content url="http://192.168.0.1/x.jpg" medium="image"/>'
            + _content('<img src="https://img.messenger.example.ge/ok.jpg" alt="ok">'),
        )
    )
    articles = _poll(db, settings, server, _rss(*items))
    for n in range(1, len(bad_hosts) + 1):
        assert articles[f"story-{n}"].image_url is None, bad_hosts[n - 1]
    assert articles["story-99"].image_url == "https://img.messenger.example.ge/ok.jpg"


def test_the_picture_follows_the_article_as_it_changes(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    first = _item(1, '<media:content url="https://img.example.ge/a.jpg" medium="image"/>')
    articles = _poll(db, settings, server, _rss(first, _item(2)))
    assert articles["story-1"].image_url == "https://img.example.ge/a.jpg"
    article_id = articles["story-1"].id

    resized = _item(
        1, '<media:content url="https://img.example.ge/b.jpg" width="1200" height="800"/>'
    )
    articles = _poll(db, settings, server, _rss(resized, _item(2)))
    assert articles["story-1"].id == article_id
    assert _image(articles["story-1"]) == ("https://img.example.ge/b.jpg", 1200, 800, "Story 1")

    # The picture gone from the feed: gone from the article too; the other item untouched.
    articles = _poll(db, settings, server, _rss(_item(1), _item(2)))
    assert _image(articles["story-1"]) == (None, None, None, None)
    assert articles["story-2"].image_url is None


def test_json_feed_image(db: Database, settings: Settings, server: FeedServer) -> None:
    body = (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "Economy", "items": ['
        b'{"id": "eco-1", "url": "https://messenger.example.ge/economy/1", "title": "Wine",'
        b' "image": "https://img.messenger.example.ge/wine.jpg", "content_text": "Up."},'
        b'{"id": "eco-2", "url": "https://messenger.example.ge/economy/2", "title": "Tea",'
        b' "image": "http://192.168.1.1/tea.jpg",'
        b' "content_html": "<p><img src=\\"https://img.messenger.example.ge/tea.jpg\\"></p>"}'
        b"]}"
    )
    server.routes["/json"] = Reply(200, body, {"Content-Type": "application/feed+json"})
    create_newsletter(
        db,
        NewsletterSpec(
            slug="daily", name="Daily", sender="D <d@example.org>", feeds=[server.url("/json")]
        ),
        allow_private=True,
    )
    (outcome,) = poll_sources(db, settings)
    assert outcome.error is None
    with db.session() as session:
        found = {a.guid: _image(a) for a in session.scalars(select(Article))}
    assert found["eco-1"] == ("https://img.messenger.example.ge/wine.jpg", None, None, "Wine")
    assert found["eco-2"] == ("https://img.messenger.example.ge/tea.jpg", None, None, "Tea")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://Img.Example.GE/a b.jpg", None),  # a space: not a URL as written
        (
            "https://img.example.ge/a.jpg?w=800&sig=Ab%2F",
            "https://img.example.ge/a.jpg?w=800&sig=Ab%2F",
        ),
        ("https://8.8.8.8/a.jpg", "https://8.8.8.8/a.jpg"),  # a public literal names its host
        ("https://xn--80ak6aa92e.example/a.jpg", "https://xn--80ak6aa92e.example/a.jpg"),
        ("https://img.example.ge:99999/a.jpg", None),
        ("https://-bad-.example.ge/a.jpg", None),
        ("https://img.home.arpa/a.jpg", None),
        ("https://" + "a" * 64 + ".example.ge/a.jpg", None),
        ("//img.example.ge/a.jpg", None),  # no scheme and no article to read it against
    ],
)
def test_image_url_rules(raw: str, expected: str | None) -> None:
    assert image_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("800", 800), (" 640px ", 640), ("0", None), ("-5", None), ("10001", None), ("1e3", None)],
)
def test_sizes_are_sensible_pixel_counts(raw: str, expected: int | None) -> None:
    assert side(raw) == expected


def test_every_draft_takes_its_contents_first_picture_when_given_none() -> None:
    """Pushed articles (CLI, API) and feed items alike: the picture beside the content wins,
    else the content's first picture that may be shown, read against the article's URL."""
    content = '<p>Text<img src="http://10.1.1.1/x.jpg"><img src="/u/1.jpg" width="400" alt=""></p>'
    pushed = make_draft(url="https://messenger.example.ge/a/1", title="Tea", content_html=content)
    assert pushed.image == ArticleImage("https://messenger.example.ge/u/1.jpg", 400, None, "Tea")
    given = ArticleImage("https://img.example.ge/given.jpg", alt="Given")
    beside = make_draft(url="https://x.ge/a", title="T", content_html=content, image=given)
    assert beside.image == given
    bare = make_draft(url="https://x.ge/a", title="T", content_html="<p>No picture.</p>")
    assert bare.image is None
    # No picture: the fingerprint is the one articles had before pictures were kept.
    before = "\x1f".join([bare.url, "T", "", "", "No picture.", "<p>No picture.</p>", ""])
    assert bare.content_hash == hashlib.sha256(before.encode()).hexdigest()
    assert pushed.content_hash != replace(pushed, image=None).content_hash


@pytest.mark.parametrize("order", ["DMC", "MDC", "DM", "MD"])
def test_a_pictures_caption_never_becomes_the_articles_words(
    db: Database, settings: Settings, server: FeedServer, order: str
) -> None:
    """feedparser reads media:description as the item's summary or first content, by
    document order: whatever the order, the article keeps its own summary and body."""
    parts = {
        "D": "<description>The budget passed at midnight.</description>",
        "C": _content("<p>Deputies stayed late.</p>"),
        "M": '<media:content url="https://img.example.ge/p.jpg" medium="image">'
        "<media:description>Deputies in the chamber</media:description></media:content>",
    }
    articles = _poll(
        db,
        settings,
        server,
        _rss(
            _item(1).replace(
                "<description>Summary 1.</description>", "".join(parts[p] for p in order)
            )
        ),
    )
    article = articles["story-1"]
    assert article.summary == "The budget passed at midnight."
    body = "<p>Deputies stayed late.</p>" if "C" in order else "The budget passed at midnight."
    assert article.content_html == body
    assert article.image_url == "https://img.example.ge/p.jpg"
