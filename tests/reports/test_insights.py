"""The dashboard's numbers: counts per newsletter, the next send, and the daily history."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.builders import articles, newsletter, subscribers
from tests.smtpserver import smtp_server
from tidings.audience.service import unsubscribe
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Subscription, Suppression, SuppressionReason
from tidings.deliver.runner import run_worker
from tidings.reports.insights import history, overview


@pytest.fixture
def sent(db: Database, settings: Settings) -> Iterator[int]:
    newsletter(db)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=2))
    subscribers(db, "daily", 5)
    with db.session() as session:
        first = session.query(Subscription).order_by(Subscription.id).first()
        assert first is not None
        session.add(Suppression(email="reader4@example.ge", reason=SuppressionReason.manual))
        session.commit()
    unsubscribe(db, first.id)
    with smtp_server() as (_, port):
        with_smtp = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        edition = send_one_off(db, with_smtp, "daily", OneOff(article_ids=[]))
        asyncio.run(run_worker(db, with_smtp, drain=True, stop=asyncio.Event()))
    yield edition.edition_id


def test_overview_counts_and_next_send(db: Database, sent: int) -> None:
    (daily,) = overview(db)
    # The suppressed reader is not counted active: the edition went to the 3 that are.
    assert daily.counts == {"active": 3, "pending": 0, "unsubscribed": 1, "suppressed": 1}
    assert daily.next_send is not None and daily.next_send > datetime.now(UTC)
    assert daily.next_send.strftime("%H:%M") == "08:00"  # in Asia/Tbilisi
    assert [e.edition_id for e in daily.editions] == [sent]
    assert daily.editions[0].counts == {"sent": daily.counts["active"]}


def test_history_counts_subscribers_and_todays_sends(db: Database, sent: int) -> None:
    points = history(db, None, days=3)
    assert [p.day for p in points][-1] == datetime.now(UTC).date()
    assert points[-1].sent == 3
    # Joined today: 5; left today: 1.
    assert points[-1].subscribers == 4 and points[0].subscribers == 0
