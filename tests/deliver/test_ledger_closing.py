"""Closing up: expired leases taken back, unsent deliveries cancelled, finished editions
closed with their final counts."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from tests.deliver.ledgerrows import sending, states
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus, Suppression
from tidings.deliver import ledger

LEASE = timedelta(seconds=30)


def _set(db: Database, subscriber_id: int, **values: object) -> None:
    with db.session() as session:
        session.execute(
            update(Delivery).where(Delivery.subscriber_id == subscriber_id).values(**values)
        )
        session.commit()


def _status(db: Database, edition_id: int, status: EditionStatus) -> None:
    with db.session() as session:
        session.execute(update(Edition).where(Edition.id == edition_id).values(status=status))
        session.commit()


@pytest.mark.parametrize(
    ("at_most_once", "edition", "expected"),
    [
        (False, EditionStatus.sending, DeliveryState.queued),
        (True, EditionStatus.sending, DeliveryState.uncertain),
        (False, EditionStatus.cancelled, DeliveryState.cancelled),
    ],
)
def test_an_expired_lease_is_taken_back(
    db: Database,
    settings: Settings,
    at_most_once: bool,
    edition: EditionStatus,
    expected: DeliveryState,
) -> None:
    made = sending(db, settings, readers=2)
    now = datetime.now(UTC)
    with db.session() as session:
        claims = ledger.claim_due(session, "w:1", 2, LEASE, now)
        session.commit()
    expired, alive = (c.subscriber_id for c in claims)
    assert expired is not None and alive is not None
    _set(db, expired, lease_expires_at=now - timedelta(seconds=1))
    _status(db, made.edition_id, edition)
    with db.session() as session:
        assert ledger.reclaim_expired(session, now, at_most_once) == 1
        session.commit()
    assert states(db, made.edition_id) == {expired: expected, alive: DeliveryState.sending}
    with db.session() as session:
        row = session.get_one(Delivery, claims[0].delivery_id)
    assert (row.lease_owner, row.next_attempt_at) == (None, now)
    assert row.last_reply is not None and row.last_reply.startswith("lease expired")


def test_cancelling_stops_only_what_no_worker_holds(db: Database, settings: Settings) -> None:
    made = sending(db, settings, readers=4)
    queued, deferred, held, sent = made.ids.values()
    _set(db, deferred, state=DeliveryState.deferred)
    _set(db, held, state=DeliveryState.sending)
    _set(db, sent, state=DeliveryState.sent)
    with db.session() as session:
        assert ledger.cancel_unsent(session, made.edition_id, "cancelled by an editor") == 2
        session.commit()
    assert states(db, made.edition_id) == {
        queued: DeliveryState.cancelled,
        deferred: DeliveryState.cancelled,
        held: DeliveryState.sending,  # its worker cancels it at its next renewal
        sent: DeliveryState.sent,
    }


def test_an_edition_is_finished_once_nothing_is_open(db: Database, settings: Settings) -> None:
    made = sending(db, settings, readers=3)
    sent, refused, deferred = made.ids.values()
    _set(db, sent, state=DeliveryState.sent)
    _set(
        db,
        refused,
        state=DeliveryState.failed,
        last_reply_code=550,
        last_reply="550 5.1.1 no such user",
    )
    _set(db, deferred, state=DeliveryState.deferred)
    now = datetime.now(UTC)
    with db.session() as session:
        assert ledger.finish_editions(session, now) == 0  # one is still to be retried
        session.commit()
    _set(db, deferred, state=DeliveryState.sent)
    with db.session() as session:
        assert ledger.finish_editions(session, now) == 1
        session.commit()
    with db.session() as session:
        edition = session.get_one(Edition, made.edition_id)
        assert (edition.status, edition.finished_at) == (EditionStatus.sent, now)
        assert edition.final_counts == {"sent": 2, "failed": 1}
        # The 5.1.1 refusal that waited for the edition's first results is suppressed now.
        assert [s.email for s in session.query(Suppression)] == [list(made.ids)[1]]
        assert ledger.finish_editions(session, now) == 0


def test_a_cancelled_edition_gets_its_final_counts_once_nothing_is_held(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=2)
    held, _queued = made.ids.values()
    _set(db, held, state=DeliveryState.sending)
    _status(db, made.edition_id, EditionStatus.cancelled)
    with db.session() as session:
        ledger.cancel_unsent(session, made.edition_id, "cancelled")
        assert ledger.finish_editions(session, datetime.now(UTC)) == 0
        session.commit()
        assert session.get_one(Edition, made.edition_id).final_counts is None
    _set(db, held, state=DeliveryState.cancelled)
    with db.session() as session:
        assert ledger.finish_editions(session, datetime.now(UTC)) == 0  # not "sent"
        session.commit()
        edition = session.get_one(Edition, made.edition_id)
        assert (edition.status, edition.final_counts) == (
            EditionStatus.cancelled,
            {"cancelled": 2},
        )
