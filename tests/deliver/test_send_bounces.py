"""A real worker against a recording SMTP server that refuses some readers: what each refusal
does to its reader, by the one classifier (hard: suppressed, soft: a point on the bounce
score, policy: nothing but the reply kept on the delivery), with the reply in the history."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.builders import articles, newsletter, subscribers
from tests.smtpserver import RecordingHandler, smtp_server
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    BouncePoint,
    Delivery,
    DeliveryState,
    Edition,
    EditionStatus,
    HistoryKind,
    Subscriber,
    SubscriberEvent,
    Suppression,
    SuppressionReason,
)
from tidings.deliver.runner import run_worker
from tidings.feedback.history import ARRIVAL


@pytest.fixture
def smtp(settings: Settings) -> Iterator[tuple[RecordingHandler, Settings]]:
    with smtp_server() as (handler, port):
        yield handler, settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})


def test_refusals_at_send_time_suppress_score_or_spare_the_reader(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    newsletter(db)
    articles(db, "daily", 3, datetime.now(UTC) - timedelta(hours=3))
    gone, full, blocked, fine = subscribers(db, "daily", 4)
    handler.behaviour.rcpt_replies[gone] = "550 5.1.1 no such user"
    handler.behaviour.rcpt_replies[full] = "552 5.2.2 mailbox full"
    handler.behaviour.rcpt_replies[blocked] = "550 5.7.1 refused: sender on a blocklist"
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    stats = asyncio.run(run_worker(db, settings, drain=True, stop=asyncio.Event()))
    assert handler.recipients() == [fine] and stats.sent == 1
    with db.session() as session:
        assert session.scalars(select(Edition.status)).one() == EditionStatus.sent
        suppressed = session.execute(select(Suppression.email, Suppression.reason)).all()
        points = session.scalars(select(BouncePoint.email)).all()
        history = session.execute(
            select(Subscriber.email, SubscriberEvent.kind, SubscriberEvent.detail)
            .join(Subscriber, Subscriber.id == SubscriberEvent.subscriber_id)
            .where(SubscriberEvent.kind.not_in(ARRIVAL))  # not how the readers came
        ).all()
        replies = dict(
            session.execute(
                select(Subscriber.email, Delivery.last_reply)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.state == DeliveryState.failed)
            ).all()
        )
    assert [(e, r) for e, r in suppressed] == [(gone, SuppressionReason.hard_bounce)]
    assert points == [full]
    assert sorted((e, k) for e, k, _ in history) == [
        (gone, HistoryKind.suppressed),
        (full, HistoryKind.bounce_point),
    ]
    assert all("5.1.1 no such user" in d or "5.2.2 mailbox full" in d for *_, d in history)
    # The policy refusal is the sender's: it stays on the delivery for the health panel.
    assert "5.7.1 refused: sender on a blocklist" in (replies[blocked] or "")
    assert set(replies) == {gone, full, blocked}


def test_the_configured_bounce_score_holds_at_send_time(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    """TIDINGS_BOUNCE_SCORE_THRESHOLD reaches the worker (its results and its upkeep, which settles
    the refusals held during an edition's first results): at one point, a single soft refusal
    suppresses its reader (by the default of five it would be a point only)."""
    handler, settings = smtp
    settings = settings.model_copy(update={"bounce_score_threshold": 1})
    newsletter(db)
    articles(db, "daily", 3, datetime.now(UTC) - timedelta(hours=3))
    full, fine = subscribers(db, "daily", 2)
    handler.behaviour.rcpt_replies[full] = "552 5.2.2 mailbox full"
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    asyncio.run(run_worker(db, settings, drain=True, stop=asyncio.Event()))
    assert handler.recipients() == [fine]
    with db.session() as session:
        suppressed = session.execute(select(Suppression.email, Suppression.reason)).all()
    assert [(e, r) for e, r in suppressed] == [(full, SuppressionReason.soft_bounce)]
