"""The lease keeper against the real ledger: a renewal keeps the worker's leases, tells it
which it lost and which editions stopped sending; nothing held, nothing asked."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from tests.deliver.ledgerrows import sending
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, Edition, EditionStatus
from tidings.deliver import ledger
from tidings.deliver.leases import LeaseBook, LeaseKeeper
from tidings.deliver.worker_db import WorkerDatabase


def _keeper(db: Database, settings: Settings, readers: int) -> tuple[int, LeaseKeeper, list[int]]:
    made = sending(db, settings, readers)
    store = WorkerDatabase(db, settings)
    book = LeaseBook("w", settings.lease_seconds)
    token = book.new_token()
    asked_at = time.monotonic()
    ids = [j.claim.delivery_id for j in store.claim(token, readers).jobs]
    book.claimed(token, ids, asked_at)
    return made.edition_id, LeaseKeeper(book, store.renew), ids


def test_a_renewal_learns_of_a_paused_edition_and_of_a_lost_delivery(
    db: Database, settings: Settings
) -> None:
    edition_id, keeper, ids = _keeper(db, settings, readers=2)
    asyncio.run(keeper.renew())
    assert keeper.stopped == {}
    lost, kept = ids
    with db.session() as session:  # another worker takes one back and claims it
        session.execute(
            update(Delivery).where(Delivery.id == lost).values(lease_expires_at=datetime.now(UTC))
        )
        later = datetime.now(UTC) + timedelta(seconds=1)
        assert ledger.reclaim_expired(session, later, at_most_once=False) == 1
        assert len(ledger.claim_due(session, "v:1", 1, timedelta(minutes=1), later)) == 1
        session.execute(
            update(Edition).where(Edition.id == edition_id).values(status=EditionStatus.paused)
        )
        session.commit()
    asyncio.run(keeper.renew())
    assert keeper.stopped == {edition_id: EditionStatus.paused}
    assert keeper.book.is_lost(lost) and not keeper.book.is_lost(kept)


def test_with_nothing_held_a_renewal_forgets_the_stopped_editions(
    db: Database, settings: Settings
) -> None:
    edition_id, keeper, ids = _keeper(db, settings, readers=1)
    keeper.stopped[edition_id] = EditionStatus.paused
    keeper.book.settled([(ids[0], "w:1")])
    asyncio.run(keeper.renew())
    assert keeper.stopped == {}
