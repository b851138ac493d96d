"""The ledger's state groups and its counts: what is open, what is due, how many of each."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from tests.deliver.ledgerrows import DOMAIN, sending
from tests.plans import blocks, crowd, plan_of, seq_scanned, statements_of
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus
from tidings.deliver import ledger


def test_open_states_are_the_due_ones_and_those_being_sent() -> None:
    assert set(ledger.DUE_STATES) == {DeliveryState.queued, DeliveryState.deferred}
    assert set(ledger.OPEN_STATES) == {*ledger.DUE_STATES, DeliveryState.sending}
    over = set(DeliveryState) - set(ledger.OPEN_STATES)
    assert DeliveryState.sent in over and DeliveryState.cancelled in over


def test_the_index_of_due_rows_holds_exactly_the_due_states() -> None:
    """Claims find due rows through a partial index: its rows are the ledger's due states,
    on both databases (a state added to one and not the other would go unclaimed, or read
    every delivery)."""
    (index,) = (i for i in Delivery.__table__.indexes if i.name == "ix_deliveries_due")
    listed = ", ".join(f"'{state.value}'" for state in ledger.DUE_STATES)
    for dialect in ("postgresql", "sqlite"):
        assert str(index.dialect_options[dialect]["where"]) == f"state IN ({listed})"


def _all(db: Database, **values: object) -> None:
    with db.session() as session:
        session.execute(update(Delivery).values(**values))
        session.commit()


def _due(db: Database, now: datetime) -> bool:
    with db.session() as session:
        return ledger.has_due_work(session, now)


def test_due_work_is_what_a_claim_would_take_or_a_lease_still_holds(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=2)
    now = datetime.now(UTC)
    assert _due(db, now)
    _all(db, state=DeliveryState.deferred, next_attempt_at=now + timedelta(minutes=5))
    assert not _due(db, now)  # deferred, not due yet
    assert _due(db, now + timedelta(minutes=5))
    _all(db, state=DeliveryState.sending, lease_expires_at=now + timedelta(minutes=1))
    assert _due(db, now)  # held: the worker holding it is not done
    _all(db, state=DeliveryState.queued, next_attempt_at=now)
    with db.session() as session:
        session.execute(
            update(Edition).where(Edition.id == made.edition_id).values(status=EditionStatus.paused)
        )
        session.commit()
    assert not _due(db, now)  # a paused edition's deliveries wait
    _all(db, state=DeliveryState.sent)
    assert not _due(db, now)


def test_counts_by_state_and_recent_sends(db: Database, settings: Settings) -> None:
    made = sending(db, settings, readers=4)
    now = datetime.now(UTC)
    first, second, third, _fourth = made.ids.values()
    with db.session() as session:
        for subscriber_id, state, sent_at in [
            (first, DeliveryState.sent, now - timedelta(seconds=10)),
            (second, DeliveryState.sent, now - timedelta(minutes=5)),
            (third, DeliveryState.failed, None),
        ]:
            session.execute(
                update(Delivery)
                .where(Delivery.subscriber_id == subscriber_id)
                .values(state=state, sent_at=sent_at)
            )
        session.commit()
    with db.session() as session:
        assert ledger.state_counts(session, made.edition_id) == {
            DeliveryState.sent: 2,
            DeliveryState.failed: 1,
            DeliveryState.queued: 1,
        }
        assert ledger.recent_sent(session, made.edition_id, now - timedelta(minutes=1)) == 1
        assert ledger.recent_sent(session, made.edition_id, now - timedelta(hours=1)) == 2
        assert ledger.state_counts(session, made.edition_id + 1) == {}


def test_due_work_is_asked_through_indexes_not_by_reading_every_delivery(
    db: Database, settings: Settings
) -> None:
    """Every few seconds per worker: with 30,000 deliveries sent and a few waiting for a
    retry later, the answer (nothing due) comes from the indexes, not a scan."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("reads the PostgreSQL planner's plans")
    made = sending(db, settings, readers=1)
    crowd(db, made.newsletter_id, 30_000)
    now = datetime.now(UTC)
    with db.session() as session:
        ledger.fan_out(session, made.edition_id, made.newsletter_id, DOMAIN, now)
        session.commit()
    _all(db, state=DeliveryState.sent)
    with db.session() as session:
        later = now + timedelta(hours=1)
        few = select(Delivery.id).order_by(Delivery.id).limit(3000).scalar_subquery()
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(few))
            .values(state=DeliveryState.deferred, next_attempt_at=later)
        )
        session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE deliveries"))  # as autovacuum would by now
    asked = statements_of(db, lambda: _due(db, now), "deliveries")
    assert len(asked) == 1
    plan = plan_of(db, asked[0], analyze=True)
    assert "deliveries" not in seq_scanned(plan), plan
    assert blocks(plan) < 30, plan  # the scan it replaced read about 300
    assert not _due(db, now) and _due(db, now + timedelta(hours=1))
