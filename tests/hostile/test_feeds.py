"""Hostile feeds and careless feed set-ups: server-side request forgery (private addresses,
redirect hops, odd spellings of loopback), probing internal ports through error messages,
slow feeds that would tie up a web worker or a shutdown. Real parts: local HTTP feed servers,
the web app over HTTP, the scheduler, the CLI, and both databases.
"""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import httpx
import pytest
from sqlalchemy import select

from tests.builders import newsletter
from tests.conftest import Cli
from tests.feedserver import FeedServer, Reply, feed_server
from tests.ingest.feeds import item, rss
from tests.web.console import csrf, make_user, sign_in
from tests.webserver import web_server
from tidings.access.apitokens import create_token
from tidings.catalog.feedguard import AddressRefused, IPAddress, is_public, refusal
from tidings.catalog.newsletters import add_feed
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Source, UserRole
from tidings.ingest.fetch import FetchPolicy, fetch_feed
from tidings.ingest.service import poll_sources
from tidings.mail.css import inline_css
from tidings.schedule.scheduler import TidingsScheduler


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with feed_server() as running:
        running.routes["/feed.xml"] = Reply(200, rss([item(1), item(2)]))
        yield running


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sources(db: Database) -> dict[str, Source]:
    with db.session() as session:
        return {s.url or "": s for s in session.scalars(select(Source).where(Source.url != None))}  # noqa: E711


def _stored_anyway(db: Database, *urls: str) -> None:
    """Sources added while private feeds were allowed (or whose DNS changed since)."""
    newsletter(db)
    for url in urls:
        add_feed(db, "daily", url, allow_private=True)


@pytest.mark.parametrize(
    ("template", "host"),
    [
        ("http://127.0.0.1:{port}/feed.xml", "127.0.0.1"),
        ("http://localhost:{port}/feed.xml", "localhost"),
        ("http://2130706433:{port}/feed.xml", "2130706433"),
        ("http://[::1]:{port}/feed.xml", "::1"),
        ("http://[::ffff:127.0.0.1]:{port}/feed.xml", "::ffff:127.0.0.1"),
        ("http://[64:ff9b::7f00:1]:{port}/feed.xml", "64:ff9b::7f00:1"),
        ("http://0.0.0.0:{port}/feed.xml", "0.0.0.0"),  # noqa: S104
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://224.0.0.1:{port}/feed.xml", "224.0.0.1"),
    ],
)
def test_polling_a_private_address_is_refused_before_connecting(
    db: Database, settings: Settings, server: FeedServer, template: str, host: str
) -> None:
    url = template.format(port=server.port)
    _stored_anyway(db, url)
    (outcome,) = poll_sources(db, settings)
    assert outcome.error == refusal(host)
    assert server.requests == []  # nothing was asked of the feed server


def test_open_and_closed_private_ports_give_the_same_answer_everywhere(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    open_url = server.url("/feed.xml")
    closed_url = f"http://127.0.0.1:{_closed_port()}/feed.xml"
    _stored_anyway(db, open_url, closed_url)
    opened, closed = poll_sources(db, settings)
    assert opened.error == closed.error == refusal("127.0.0.1")
    sources = _sources(db)
    assert sources[open_url].last_error == sources[closed_url].last_error

    _, token = create_token(db, "reader", UserRole.viewer, "test")
    make_user(db, UserRole.viewer)
    with web_server(settings, db) as base:
        shown = httpx.get(
            f"{base}/api/v1/newsletters/daily/sources",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert {s["url"]: s["last_error"] for s in shown if s["url"]} == {
            open_url: refusal("127.0.0.1"),
            closed_url: refusal("127.0.0.1"),
        }
        page = sign_in(base, "viewer@messenger.example.ge").get("/admin/newsletters/daily").text
        assert page.count("is not a public address") == 2
        assert "refused" not in page.lower().replace("refused: 127.0.0.1 is not", "")


@dataclass
class TwoServers:
    """A feed server on 127.0.0.2 that the test treats as public, and one on 127.0.0.1."""

    outside: FeedServer
    inside: FeedServer


@pytest.fixture
def two_servers() -> Iterator[TwoServers]:
    with feed_server("127.0.0.2") as outside, feed_server("127.0.0.1") as inside:
        inside.routes["/admin"] = Reply(200, rss([item(9, title="Internal secret")]))
        yield TwoServers(outside, inside)


def _public_or_outside(address: IPAddress) -> bool:
    return is_public(address) or str(address) == "127.0.0.2"


def _policy(settings: Settings, allow_private: bool = False) -> FetchPolicy:
    """TIDINGS_FEED_ALLOW_PRIVATE as given, except that 127.0.0.2 counts as public."""
    policy = FetchPolicy.from_settings(
        settings.model_copy(update={"feed_timeout_seconds": 5, "feed_allow_private": allow_private})
    )
    return policy if allow_private else replace(policy, address_allowed=_public_or_outside)


@pytest.mark.parametrize(
    "target", ["http://127.0.0.1:{port}/admin", "http://localhost:{port}/admin"]
)
def test_a_redirect_into_the_private_network_is_refused(
    settings: Settings, two_servers: TwoServers, target: str
) -> None:
    location = target.format(port=two_servers.inside.port)
    two_servers.outside.routes["/feed.xml"] = Reply(302, headers={"Location": location})
    url = two_servers.outside.url("/feed.xml")
    with pytest.raises(AddressRefused) as refused:
        fetch_feed(url, etag=None, last_modified=None, policy=_policy(settings))
    host = location.split("//")[1].rsplit(":", 1)[0]
    assert str(refused.value) == refusal(host)
    assert [path for path, _ in two_servers.outside.requests] == ["/feed.xml"]
    assert two_servers.inside.requests == []

    allowed = fetch_feed(url, etag=None, last_modified=None, policy=_policy(settings, True))
    assert allowed.body is not None and b"Internal secret" in allowed.body


def test_sni_and_host_header_keep_the_name_while_the_checked_address_is_used(
    settings: Settings, server: FeedServer
) -> None:
    url = f"http://localhost:{server.port}/feed.xml"
    result = fetch_feed(url, etag=None, last_modified=None, policy=_policy(settings, True))
    assert result.body is not None
    assert server.requests[-1][1]["host"] == f"localhost:{server.port}"


def test_adding_a_private_feed_is_refused_at_every_door(
    db: Database, settings: Settings, server: FeedServer, cli: Cli
) -> None:
    private = server.url("/feed.xml")
    newsletter(db)
    make_user(db, UserRole.admin)
    _, token = create_token(db, "owner", UserRole.admin, "test")
    with web_server(settings, db) as base:
        console = sign_in(base, "admin@messenger.example.ge")
        answer = console.post(
            "/admin/newsletters/daily/feeds", data={"csrf_token": csrf(console), "url": private}
        )
        assert answer.status_code == 422
        assert "is not a public address" in answer.text
        assert "TIDINGS_FEED_ALLOW_PRIVATE=true" in answer.text
        api = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"})
        answer = api.post("/newsletters/daily/sources", json={"url": private})
        assert answer.status_code == 422
        assert "is not a public address" in answer.json()["error"]["message"]
    result = cli(
        "newsletter", "create", "other", "--name", "Other", "--from", "O <o@example.ge>",
        "--feed", "http://[::ffff:169.254.169.254]/latest",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "is not a public address" in result.output
    assert server.requests == []
    assert list(_sources(db)) == []


@dataclass
class SlowSite:
    base: str
    feeds: FeedServer
    db: Database
    token: str
    #: Lets the slow feed answer; until then it holds every fetch.
    release: threading.Event


@pytest.fixture
def slow_site(db: Database, settings: Settings) -> Iterator[SlowSite]:
    local = settings.model_copy(update={"feed_allow_private": True, "feed_timeout_seconds": 10})
    release = threading.Event()
    with feed_server() as feeds:
        feeds.routes["/slow.xml"] = Reply(200, rss([item(1)]), held_until=release)
        newsletter(db)
        add_feed(db, "daily", feeds.url("/slow.xml"), allow_private=True)
        make_user(db, UserRole.editor)
        _, token = create_token(db, "editor", UserRole.editor, "test")
        try:
            with web_server(local, db) as base:
                yield SlowSite(base, feeds, db, token, release)
        finally:
            release.set()


def _wait_for_result(db: Database, url: str, seconds: float = 10) -> Source:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        source = _sources(db)[url]
        if source.last_polled_at is not None:
            return source
        time.sleep(0.1)
    raise AssertionError("the background poll never finished")


def test_poll_now_in_the_console_answers_at_once_while_the_feed_is_slow(
    slow_site: SlowSite,
) -> None:
    console = sign_in(slow_site.base, "editor@messenger.example.ge")
    token = csrf(console)
    first = console.post("/admin/newsletters/daily/poll", data={"csrf_token": token})
    # The feed holds its answer until released: a page that waited for the fetch would have
    # come back only after the poll was recorded.
    assert first.status_code == 200
    assert _sources(slow_site.db)[slow_site.feeds.url("/slow.xml")].last_polled_at is None
    assert "Polling 1 feed(s) in the background" in first.text
    again = console.post("/admin/newsletters/daily/poll", data={"csrf_token": token})
    assert "1 already being polled" in again.text  # at most one poll per source at a time
    slow_site.release.set()
    source = _wait_for_result(slow_site.db, slow_site.feeds.url("/slow.xml"))
    assert (source.last_error, source.consecutive_failures) == (None, 0)
    assert len(slow_site.feeds.requests) == 1
    page = console.get("/admin/newsletters/daily")
    assert "never" not in page.text.split("Sources", 1)[1].split("</table>", 1)[0]


def test_poll_now_in_the_api_answers_202_at_once_while_the_feed_is_slow(
    slow_site: SlowSite,
) -> None:
    api = httpx.Client(
        base_url=f"{slow_site.base}/api/v1",
        headers={"Authorization": f"Bearer {slow_site.token}"},
    )
    answer = api.post("/newsletters/daily/poll")
    # Answered while the feed still holds its reply (see the console test above).
    assert answer.status_code == 202, answer.text
    assert _sources(slow_site.db)[slow_site.feeds.url("/slow.xml")].last_polled_at is None
    assert answer.json()["started"] == 1
    assert api.post("/newsletters/daily/poll").json()["already_running"] == 1
    slow_site.release.set()
    _wait_for_result(slow_site.db, slow_site.feeds.url("/slow.xml"))
    (shown,) = [s for s in api.get("/newsletters/daily/sources").json() if s["url"]]
    assert shown["last_success_at"] is not None and shown["last_error"] is None
    assert api.post("/newsletters/nope/poll").status_code == 404


def test_the_scheduler_stops_at_once_with_a_fetch_in_flight(
    db: Database, settings: Settings
) -> None:
    patient = settings.model_copy(update={"feed_allow_private": True, "feed_timeout_seconds": 60})
    with feed_server() as feeds:
        feeds.routes["/drip.xml"] = Reply(200, b"<rss>" + b" " * 20, drip_seconds=0.5)
        newsletter(db)
        add_feed(db, "daily", feeds.url("/drip.xml"), allow_private=True)
        stop_at: list[float] = []

        async def run_then_stop() -> None:
            stop = asyncio.Event()
            running = asyncio.create_task(TidingsScheduler(db, patient).run(stop))
            while not feeds.requests:  # the poll job's fetch is in flight
                await asyncio.sleep(0.05)
            stop_at.append(time.monotonic())
            stop.set()
            await running

        runner = threading.Thread(target=lambda: asyncio.run(run_then_stop()))
        runner.start()
        runner.join(timeout=30)
        assert not runner.is_alive()
        assert stop_at and time.monotonic() - stop_at[0] < 2.0


def test_css_inlining_never_fetches_from_the_network(server: FeedServer) -> None:
    """A template's <link> or @import must not make the renderer fetch (premailer left
    cssutils free to fetch @import URLs)."""
    css = server.url("/style.css")
    server.routes["/style.css"] = Reply(200, b"p { color: red }", {"Content-Type": "text/css"})
    html = (
        f'<html><head><link rel="stylesheet" href="{css}"><style>@import url("{css}");'
        f'@import "{css}"; p {{ margin: 0 }}</style></head><body><p>Tbilisi</p></body></html>'
    )
    inlined = inline_css(html)
    assert server.requests == []
    assert 'style="margin:0"' in inlined.replace(" ", "")


def test_the_web_app_stops_at_once_with_a_poll_now_in_flight(
    db: Database, settings: Settings
) -> None:
    patient = settings.model_copy(update={"feed_allow_private": True, "feed_timeout_seconds": 60})
    with feed_server() as feeds:
        feeds.routes["/drip.xml"] = Reply(200, b"<rss>" + b" " * 40, drip_seconds=0.5)
        newsletter(db)
        add_feed(db, "daily", feeds.url("/drip.xml"), allow_private=True)
        _, token = create_token(db, "editor", UserRole.editor, "test")
        with web_server(patient, db) as base:
            answer = httpx.post(
                f"{base}/api/v1/newsletters/daily/poll",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 202
            until = time.monotonic() + 5
            while not feeds.requests and time.monotonic() < until:
                time.sleep(0.05)
            assert feeds.requests  # the fetch is in flight
            stopping = time.monotonic()
        assert time.monotonic() - stopping < 2.0
        # Shutdown cancelled the fetch: no poll thread is left to hold up the process's exit.
        assert not [t.name for t in threading.enumerate() if t.name.startswith("poll-now")]
        source = _sources(db)[feeds.url("/drip.xml")]
        assert (source.consecutive_failures, source.last_error) == (0, None)
