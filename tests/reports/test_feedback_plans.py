"""An edition's bounce list and counts find its few troubled deliveries through indexes, not
by reading the edition (a million rows for the few hundred refused or come back)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from tests.deliver.ledgerrows import DOMAIN, sending
from tests.plans import blocks, crowd, plan_of, seq_scanned, statements_of
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryFeedback,
    DeliveryState,
    InboundMeaning,
    InboundMessage,
)
from tidings.deliver import ledger
from tidings.reports.feedback import edition_feedback

READERS = 20_000


def _ids(db: Database, edition_id: int, low: int, high: int) -> list[int]:
    with db.session() as session:
        return list(
            session.scalars(
                select(Delivery.id)
                .where(Delivery.edition_id == edition_id)
                .order_by(Delivery.id)
                .offset(low)
                .limit(high - low)
            )
        )


def _edition_with_trouble(db: Database, settings: Settings) -> tuple[int, set[int]]:
    """An edition of READERS + 1 sent deliveries: 30 refused, 5 bounced, and 3 named only by
    an inbound soft bounce (the kind that sets no feedback); the troubled ids."""
    made = sending(db, settings, readers=1)
    crowd(db, made.newsletter_id, READERS)
    with db.session() as session:
        ledger.fan_out(session, made.edition_id, made.newsletter_id, DOMAIN, datetime.now(UTC))
        session.execute(update(Delivery).values(state=DeliveryState.sent))
        session.commit()
    refused, bounced, came_back = (
        _ids(db, made.edition_id, 100, 130),
        _ids(db, made.edition_id, 5_000, 5_005),
        _ids(db, made.edition_id, 9_000, 9_003),
    )
    with db.session() as session:
        session.execute(
            update(Delivery).where(Delivery.id.in_(refused)).values(state=DeliveryState.failed)
        )
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(bounced))
            .values(feedback=DeliveryFeedback.bounced)
        )
        now = datetime.now(UTC)
        for delivery_id in came_back:
            session.add(
                InboundMessage(
                    channel="pipe",
                    received_at=now + timedelta(minutes=5),
                    meaning=InboundMeaning.soft_bounce,
                    delivery_id=delivery_id,
                )
            )
        session.commit()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE deliveries, inbound_messages"))
    return made.edition_id, {*refused, *bounced, *came_back}


def test_the_bounce_list_finds_the_troubled_rows_through_indexes(
    db: Database, settings: Settings
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("reads the PostgreSQL planner's plans")
    edition_id, troubled = _edition_with_trouble(db, settings)
    seen = []
    sent = statements_of(
        db, lambda: seen.append(edition_feedback(db, edition_id, 0, 50)), "deliveries"
    )
    (feedback,) = seen
    assert feedback.summary.total == len(troubled) == 38
    assert (feedback.summary.refused, feedback.summary.bounced) == (30, 5)
    assert {row.delivery_id for row in feedback.page.rows} == troubled
    for statement in sent:
        plan = plan_of(db, statement, analyze=True)
        assert "deliveries" not in seq_scanned(plan), statement
        # The edition's rows fill about 250 pages; the troubled ones are read from a few.
        assert blocks(plan) < 200, (blocks(plan), statement[0])
