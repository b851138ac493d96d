"""A result written after its reader was erased: the ledger's state still lands (counts stay
true), but the anonymous row keeps no reply naming the reader; a reader not erased in the
same batch keeps theirs (the choice is made row by row in the one UPDATE)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.deliver.ledgerrows import sending
from tests.deliver.linksupport import BLOCK_WAIT_S, wait_until_blocked
from tidings.audience.erasure import erase_readers
from tidings.audience.subscribers import erase
from tidings.config import Settings
from tidings.db.dialect import is_postgres
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Subscriber
from tidings.deliver import ledger


def test_a_late_result_lands_on_the_erased_reader_s_row_without_its_reply(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=2)
    gone, kept = made.ids.values()
    later = datetime.now(UTC) + timedelta(minutes=5)
    with db.session() as session:
        claims = ledger.claim_due(session, "h6:1", 10, timedelta(minutes=10), later)
        session.commit()
    assert sorted(c.subscriber_id for c in claims if c.subscriber_id) == sorted([gone, kept])
    assert erase(db, gone)
    by_reader = {c.subscriber_id: c for c in claims}
    outcomes = [
        by_reader[gone].outcome(DeliveryState.sent, 250, "250 queued for <reader0>", later),
        by_reader[kept].outcome(
            DeliveryState.deferred, 452, "452 <reader1>: full", later, later + timedelta(hours=1)
        ),
    ]
    with db.session() as session:
        recorded = ledger.record_outcomes(session, outcomes, {made.edition_id})
        session.commit()
    assert recorded.written == 2 and recorded.dropped == ()
    with db.session() as session:
        rows = {
            row.id: row
            for row in session.execute(
                select(
                    Delivery.id,
                    Delivery.subscriber_id,
                    Delivery.state,
                    Delivery.last_reply_code,
                    Delivery.last_reply,
                    Delivery.sent_at,
                    Delivery.lease_owner,
                )
            )
        }
    anonymous = rows[by_reader[gone].delivery_id]
    assert anonymous.subscriber_id is None
    assert (anonymous.state, anonymous.last_reply_code) == (DeliveryState.sent, 250)
    assert anonymous.sent_at is not None and anonymous.lease_owner is None
    assert anonymous.last_reply is None
    theirs = rows[by_reader[kept].delivery_id]
    assert (theirs.subscriber_id, theirs.state) == (kept, DeliveryState.deferred)
    assert theirs.last_reply == "452 <reader1>: full"


def test_a_result_racing_an_erasure_waits_for_it_and_then_stores_no_reply(
    db: Database, settings: Settings
) -> None:
    """On PostgreSQL the erasure holds every delivery of the reader until it commits, so a
    worker's result written meanwhile waits, then finds the row anonymous."""
    if not is_postgres(db.engine):
        pytest.skip("SQLite has one writer at a time: no result is written beside an erasure")
    made = sending(db, settings, readers=1)
    ((address, subscriber_id),) = made.ids.items()
    later = datetime.now(UTC) + timedelta(minutes=5)
    with db.session() as session:
        (claim,) = ledger.claim_due(session, "h6:2", 10, timedelta(minutes=10), later)
        session.commit()
    errors: list[BaseException] = []

    def write_result() -> None:
        try:
            with db.session() as session:
                outcome = claim.outcome(DeliveryState.sent, 250, f"250 <{address}>", later)
                ledger.record_outcomes(session, [outcome], {made.edition_id})
                session.commit()
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    with db.session() as erasing:
        which = select(Subscriber.id).where(Subscriber.id == subscriber_id)
        assert erase_readers(erasing, which) == 1
        thread = threading.Thread(target=write_result, daemon=True)
        thread.start()
        wait_until_blocked(db, "FOR UPDATE")
        erasing.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive() and not errors
    with db.session() as session:
        row = session.execute(
            select(Delivery.subscriber_id, Delivery.state, Delivery.last_reply)
        ).one()
    assert tuple(row) == (None, DeliveryState.sent, None)
