from collections.abc import Iterator

import pytest
from sqlalchemy import select

from tests.feedserver import FeedServer, Reply, feed_server
from tests.ingest.feeds import ATOM, JSON_FEED, item, rss
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Article, Source
from tidings.ingest.service import poll_sources


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The feed server listens on loopback: these tests allow private feed addresses."""
    return settings.model_copy(update={"feed_allow_private": True})


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with feed_server() as running:
        yield running


def _newsletter(db: Database, *feeds: str) -> None:
    create_newsletter(
        db,
        NewsletterSpec(slug="daily", name="Daily", sender="D <d@example.org>", feeds=list(feeds)),
        allow_private=True,
    )


def _articles(db: Database) -> list[Article]:
    with db.session() as session:
        return list(session.scalars(select(Article).order_by(Article.guid)))


def _source(db: Database, url: str) -> Source:
    with db.session() as session:
        source = session.scalar(select(Source).where(Source.url == url))
        assert source is not None
        return source


def test_rss_is_stored_then_not_refetched_with_304(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    body = rss([item(1), item(2, title="Panjikidze in &#8220;Brussels&#8221;")])

    def conditional(headers: dict[str, str]) -> Reply:
        if headers.get("if-none-match") == '"v1"':
            return Reply(304)
        return Reply(200, body, {"Content-Type": "application/rss+xml", "ETag": '"v1"'})

    server.routes["/rss"] = conditional
    _newsletter(db, server.url("/rss"))
    first = poll_sources(db, settings)
    assert (first[0].error, first[0].counts.new) == (None, 2)
    articles = _articles(db)
    assert [a.guid for a in articles] == ["story-1", "story-2"]
    assert articles[1].title == "Panjikidze in \u201cBrussels\u201d"
    assert articles[0].byline == "By Messenger Staff"
    assert articles[0].section == "Politics"
    assert articles[0].published_at.isoformat() == "2026-06-20T06:00:00+00:00"

    second = poll_sources(db, settings)
    assert second[0].not_modified
    assert server.requests[-1][1].get("if-none-match") == '"v1"'
    assert len(_articles(db)) == 2
    assert _source(db, server.url("/rss")).last_success_at is not None


def test_edited_item_updates_its_article_and_new_items_are_added(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    server.routes["/rss"] = Reply(200, rss([item(1), item(2)]))
    _newsletter(db, server.url("/rss"))
    poll_sources(db, settings)
    first_seen = {a.guid: (a.id, a.first_seen_at) for a in _articles(db)}

    server.routes["/rss"] = Reply(
        200, rss([item(1, title="Story one, corrected"), item(2), item(3)])
    )
    outcome = poll_sources(db, settings)[0]
    assert (outcome.counts.new, outcome.counts.updated, outcome.counts.unchanged) == (1, 1, 1)
    articles = {a.guid: a for a in _articles(db)}
    assert articles["story-1"].title == "Story one, corrected"
    assert (articles["story-1"].id, articles["story-1"].first_seen_at) == first_seen["story-1"]
    assert len(articles) == 3


def test_items_without_guid_dedupe_by_canonical_url_and_undated_get_first_seen(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    undated = {"title": "Undated", "link": "https://messenger.example.ge/u?utm_source=rss#x"}
    server.routes["/rss"] = Reply(200, rss([undated]))
    _newsletter(db, server.url("/rss"))
    poll_sources(db, settings)
    undated["link"] = "https://MESSENGER.example.ge/u"
    outcome = poll_sources(db, settings)[0]
    assert outcome.counts.unchanged == 1
    (article,) = _articles(db)
    assert article.guid == "https://messenger.example.ge/u"
    assert article.published_is_first_seen
    assert article.published_at == article.first_seen_at


def test_script_laden_item_is_sanitised(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    evil = item(
        1,
        title="<script>alert('t')</script>Budget passes",
        content='<p onmouseover="x()">Text<script>document.cookie</script></p>'
        '<a href="javascript:evil()">link</a><img src=x onerror="y()">',
        description="<b>Bold</b> &amp; <script>bad()</script>summary",
    )
    server.routes["/rss"] = Reply(200, rss([evil]))
    _newsletter(db, server.url("/rss"))
    poll_sources(db, settings)
    (article,) = _articles(db)
    assert article.title == "Budget passes"
    assert article.summary == "Bold & summary"
    assert article.content_html is not None
    for bad in ("script", "onmouseover", "javascript:", "onerror", "document.cookie"):
        assert bad not in article.content_html


def test_atom_and_json_feeds(db: Database, settings: Settings, server: FeedServer) -> None:
    server.routes["/atom"] = Reply(200, ATOM, {"Content-Type": "application/atom+xml"})
    server.routes["/json"] = Reply(200, JSON_FEED, {"Content-Type": "application/feed+json"})
    _newsletter(db, server.url("/atom"), server.url("/json"))
    outcomes = poll_sources(db, settings)
    assert [o.error for o in outcomes] == [None, None]
    assert outcomes[1].rejected == ["item 2: url must be an absolute http(s) URL, not ''"]
    articles = {a.guid: a for a in _articles(db)}
    assert articles["urn:messenger:culture:1"].byline == "Tamar Beridze"
    assert articles["urn:messenger:culture:1"].content_html == "<p>A new <em>Hamlet</em>.</p>"
    economy = articles["eco-1"]
    assert economy.section == "Economy"
    assert economy.content_html == "<p>First paragraph.</p><p>Second &lt;b&gt;one&lt;/b&gt;.</p>"
    assert economy.published_at.isoformat() == "2026-06-24T10:40:00+00:00"


@pytest.mark.parametrize(
    ("route", "reply", "expected"),
    [
        ("/loop", Reply(302, headers={"Location": "/loop"}), "more than 5 redirects"),
        ("/huge", Reply(200, b"<rss>", stream_bytes=50 * 1024 * 1024), "over the"),
        ("/declared", Reply(200, b"x" * 2_000_000), "over the"),
        ("/invalid", Reply(200, b"<<<this is not xml at all>>> \x00"), "not an RSS, Atom"),
        (
            "/html",
            Reply(
                200,
                b"<!doctype html><html><body><h1>Hello</h1></body></html>",
                {"Content-Type": "text/html"},
            ),
            "not an RSS, Atom",
        ),
        ("/gone", Reply(404, b"nope"), "HTTP 404"),
    ],
)
def test_broken_sources_record_their_error_and_never_stop_the_others(
    db: Database,
    settings: Settings,
    server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
    route: str,
    reply: Reply,
    expected: str,
) -> None:
    small = settings.model_copy(update={"feed_max_bytes": 1_000_000})
    server.routes[route] = reply
    server.routes["/good"] = Reply(200, rss([item(1)]))
    _newsletter(db, server.url(route), server.url("/good"))
    for attempt in (1, 2):
        outcomes = {o.url: o for o in poll_sources(db, small)}
        broken = outcomes[server.url(route)]
        assert broken.error is not None and expected in broken.error
        assert outcomes[server.url("/good")].error is None
        source = _source(db, server.url(route))
        assert source.consecutive_failures == attempt
        assert source.last_error is not None and expected in source.last_error
        assert source.last_success_at is None
    assert [a.guid for a in _articles(db)] == ["story-1"]


def test_unreachable_host_is_recorded(db: Database, settings: Settings) -> None:
    _newsletter(db, "http://127.0.0.1:9/feed")  # discard port: nothing listens
    (outcome,) = poll_sources(db, settings)
    assert outcome.error is not None
    assert _source(db, "http://127.0.0.1:9/feed").consecutive_failures == 1
