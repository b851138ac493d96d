"""The ledger's state groups and its counts: what is open, what is due, how many of each."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from tests.deliver.ledgerrows import sending
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus
from tidings.deliver import ledger


def test_open_states_are_the_due_ones_and_those_being_sent() -> None:
    assert set(ledger.DUE_STATES) == {DeliveryState.queued, DeliveryState.deferred}
    assert set(ledger.OPEN_STATES) == {*ledger.DUE_STATES, DeliveryState.sending}
    over = set(DeliveryState) - set(ledger.OPEN_STATES)
    assert DeliveryState.sent in over and DeliveryState.cancelled in over


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
