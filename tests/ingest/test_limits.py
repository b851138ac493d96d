"""Every feed fetch is bounded: one deadline for the whole fetch (a slow drip is cut off), a
bounded pool (one slow feed never holds up the others), a cancel flag (shutdown does not wait
for a fetch), and a cap on the decoded body."""

import gzip
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.feedserver import FeedServer, Reply, feed_server
from tests.ingest.feeds import item, rss
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Source
from tidings.errors import FeedUnreachable
from tidings.ingest.fetch import FetchPolicy, fetch_feed
from tidings.ingest.service import PollOutcome, poll_sources

DEADLINE = 1.5
#: 40 bytes, one every 0.3 s: 12 s in all, each read well inside any per-read timeout.
SLOW_DRIP = Reply(200, b"<rss>" + b" " * 35, drip_seconds=0.3)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short deadline; the feed server listens on loopback, so private feeds are allowed."""
    return settings.model_copy(
        update={"feed_allow_private": True, "feed_timeout_seconds": DEADLINE}
    )


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


def _source(db: Database, url: str) -> Source:
    with db.session() as session:
        found = session.scalar(select(Source).where(Source.url == url))
        assert found is not None
        return found


def _wait_for_request(server: FeedServer, path: str, seconds: float = 5.0) -> None:
    until = time.monotonic() + seconds
    while not any(seen == path for seen, _ in server.requests):
        assert time.monotonic() < until, f"the feed server never saw {path}"
        time.sleep(0.02)


def test_a_slow_drip_is_cut_off_at_the_deadline(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    server.routes["/drip"] = SLOW_DRIP
    _newsletter(db, server.url("/drip"))
    started = time.monotonic()
    (outcome,) = poll_sources(db, settings)
    elapsed = time.monotonic() - started
    assert outcome.error is not None and outcome.error.startswith("timed out")
    assert f"within {DEADLINE:g} s" in outcome.error
    assert DEADLINE - 0.1 < elapsed < DEADLINE + 1.0
    assert _source(db, server.url("/drip")).consecutive_failures == 1


def test_a_late_answer_is_cut_off_at_the_deadline(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    server.routes["/late"] = Reply(200, rss([item(1)]), delay_seconds=6)
    _newsletter(db, server.url("/late"))
    started = time.monotonic()
    (outcome,) = poll_sources(db, settings)
    assert outcome.error is not None and outcome.error.startswith("timed out")
    assert time.monotonic() - started < DEADLINE + 1.0


def test_one_slow_feed_does_not_hold_up_the_others(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    two_at_once = settings.model_copy(update={"feed_poll_concurrency": 2})
    server.routes["/drip"] = SLOW_DRIP
    fast = [f"/fast{n}" for n in range(4)]
    for n, path in enumerate(fast):
        server.routes[path] = Reply(200, rss([item(n)]))
    _newsletter(db, server.url("/drip"), *(server.url(path) for path in fast))
    started = time.monotonic()
    finished: dict[str, float] = {}

    def note(outcome: PollOutcome) -> None:
        finished[outcome.url] = time.monotonic() - started

    outcomes = poll_sources(db, two_at_once, on_outcome=note)
    assert [o.url for o in outcomes] == [server.url(p) for p in ["/drip", *fast]]  # in order
    assert all(o.error is None for o in outcomes[1:])
    assert all(finished[server.url(path)] < 1.0 for path in fast), finished
    assert finished[server.url("/drip")] >= DEADLINE - 0.1


def test_a_cancelled_poll_stops_at_once_and_blames_no_feed(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    patient = settings.model_copy(update={"feed_timeout_seconds": 60})
    server.routes["/drip"] = SLOW_DRIP
    _newsletter(db, server.url("/drip"))
    cancel = threading.Event()
    results: list[list[PollOutcome]] = []
    poll = threading.Thread(target=lambda: results.append(poll_sources(db, patient, cancel=cancel)))
    poll.start()
    _wait_for_request(server, "/drip")
    cancel.set()
    stopped_at = time.monotonic()
    poll.join(timeout=10)
    assert not poll.is_alive()
    assert time.monotonic() - stopped_at < 1.0
    assert results == [[]]  # no outcome: the next poll tries again
    source = _source(db, server.url("/drip"))
    assert (source.consecutive_failures, source.last_error) == (0, None)


def test_compressed_feeds_are_decoded_and_a_compressed_bomb_is_capped(
    db: Database, settings: Settings, server: FeedServer
) -> None:
    small = settings.model_copy(update={"feed_max_bytes": 1_000_000})
    gz = {"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"}
    server.routes["/gz"] = Reply(200, gzip.compress(rss([item(1), item(2)])), gz)
    server.routes["/bomb"] = Reply(200, gzip.compress(b"<rss>" + b" " * 20_000_000), gz)
    server.routes["/br"] = Reply(200, b"\x00" * 10, {"Content-Encoding": "br"})
    _newsletter(db, server.url("/gz"), server.url("/bomb"), server.url("/br"))
    good, bomb, brotli = poll_sources(db, small)
    assert (good.error, good.counts.new) == (None, 2)
    assert bomb.error is not None and "over the 1000000-byte cap" in bomb.error
    assert brotli.error == "unsupported Content-Encoding 'br'"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` (made by the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_keeps_the_name_for_sni_and_the_certificate_and_obeys_the_deadline(
    settings: Settings, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    policy = replace(
        FetchPolicy.from_settings(settings),
        ssl_context=ssl.create_default_context(cafile=str(cert)),
    )
    with feed_server(tls=server_side) as server:
        server.routes["/rss"] = Reply(200, rss([item(1)]))
        server.routes["/drip"] = SLOW_DRIP
        by_name = f"https://localhost:{server.port}"
        # Connected to the resolved, checked address; verified against the name.
        result = fetch_feed(f"{by_name}/rss", etag=None, last_modified=None, policy=policy)
        assert result.body is not None and b"Story number 1" in result.body
        with pytest.raises(FeedUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
            fetch_feed(server.url("/rss"), etag=None, last_modified=None, policy=policy)
        started = time.monotonic()
        with pytest.raises(FeedUnreachable, match="timed out"):
            fetch_feed(f"{by_name}/drip", etag=None, last_modified=None, policy=policy)
        assert time.monotonic() - started < DEADLINE + 1.0
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never says a word
        started = time.monotonic()
        with pytest.raises(FeedUnreachable, match="timed out"):
            url = f"https://localhost:{silent.getsockname()[1]}/rss"
            fetch_feed(url, etag=None, last_modified=None, policy=policy)
        assert time.monotonic() - started < DEADLINE + 1.0  # a stalled TLS handshake too
