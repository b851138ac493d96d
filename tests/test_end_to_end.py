"""From a feed on a local HTTP server to inboxes, and out again with one click."""

import asyncio
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
from sqlalchemy import select

from tests.feedserver import Reply, feed_server
from tests.ingest.feeds import rss
from tests.smtpserver import smtp_server
from tests.webserver import web_server
from tidings.audience.service import add_subscriber
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Edition, EditionStatus
from tidings.deliver.runner import run_worker
from tidings.ingest.service import poll_sources
from tidings.schedule.slots import serve_due_slots

READERS = ["nino@example.ge", "giorgi@example.ge", "tamar@example.ge"]


def _items(now: datetime, start: int, count: int) -> list[dict[str, str]]:
    return [
        {
            "title": f"Story {n}: Abashidze’s budget",
            "link": f"https://messenger.example.ge/{n}",
            "guid": f"story-{n}",
            "pubDate": format_datetime(now - timedelta(minutes=60 + n)),
            "description": f"Summary {n}.",
        }
        for n in range(start, start + count)
    ]


def test_feed_to_inbox_to_one_click_unsubscribe(db: Database, settings: Settings) -> None:
    now = datetime.now(UTC)
    with feed_server() as feeds, smtp_server() as (smtp, smtp_port):
        feeds.routes["/feed.xml"] = Reply(200, rss(_items(now, 0, 3)))
        with web_server(settings, db) as base:
            live = settings.model_copy(
                update={
                    "smtp_url": f"smtp://127.0.0.1:{smtp_port}",
                    "base_url": base,
                    "feed_allow_private": True,  # the feed server is on loopback
                }
            )
            create_newsletter(
                db,
                NewsletterSpec(
                    slug="daily",
                    name="The Daily Messenger",
                    sender="The Messenger <digest@messenger.example.ge>",
                    schedule="*/30 * * * *",
                    timezone="Asia/Tbilisi",
                    feeds=[feeds.url("/feed.xml")],
                ),
                allow_private=True,
            )
            for i, address in enumerate(READERS):
                add_subscriber(db, "daily", address, f"Reader {i}", confirmed=True, source="t")

            assert poll_sources(db, live)[0].counts.new == 3
            (outcome,) = serve_due_slots(db, live, now)  # a scheduler tick
            assert outcome.result.created and outcome.result.deliveries == 3
            stats = asyncio.run(run_worker(db, live, drain=True, stop=asyncio.Event()))
            assert stats.sent == 3
            assert sorted(smtp.recipients()) == sorted(READERS)

            nino = next(c.message for c in smtp.caught if c.rcpt_tos == ["nino@example.ge"])
            assert nino["Subject"].startswith("The Daily Messenger: Story 0")
            assert nino["From"] == "The Messenger <digest@messenger.example.ge>"
            assert nino["List-Id"] == "The Daily Messenger <daily.messenger.example.ge>"
            assert nino["Precedence"] == "bulk"
            match = re.search(r"<(http[^>]+/u/[^>]+)>", nino["List-Unsubscribe"])
            assert match is not None
            text = nino.get_body(("plain",)).get_content()  # type: ignore[union-attr]
            assert "Hello Reader," in text and match.group(1) in text  # greeted by first name
            html = nino.get_body(("html",)).get_content()  # type: ignore[union-attr]
            view = re.search(r'href="([^"]+/archive/[^"]+)"', html)
            assert view is not None
            archive = httpx.get(view.group(1))
            assert archive.status_code == 200 and "Story 0" in archive.text
            assert "nino@example.ge" not in archive.text

            answer = httpx.post(match.group(1), data={"List-Unsubscribe": "One-Click"})
            assert answer.status_code == 200

            # The next edition skips the person who left.
            later = now + timedelta(minutes=31)
            feeds.routes["/feed.xml"] = Reply(200, rss(_items(later, 3, 2)))
            assert poll_sources(db, live)[0].counts.new == 2
            (second,) = serve_due_slots(db, live, later)
            assert second.result.created and second.result.deliveries == 2
            asyncio.run(run_worker(db, live, drain=True, stop=asyncio.Event()))
            recipients = smtp.recipients()
            assert recipients.count("nino@example.ge") == 1
            assert recipients.count("giorgi@example.ge") == 2
    with db.session() as session:
        statuses = session.scalars(select(Edition.status).order_by(Edition.id)).all()
    assert statuses == [EditionStatus.sent, EditionStatus.sent]
