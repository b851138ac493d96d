"""Helpers of the tests on the ledger's links (a delivery's edition and subscriber): counting
orphans, and waiting until a statement of another connection waits on a row lock."""

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from tidings.db.engine import Database
from tidings.db.models import Delivery, Edition, Subscriber

#: A bound on how long another connection may take to reach its lock, not a pause.
BLOCK_WAIT_S = 60.0


def orphans(db: Database) -> int:
    """Deliveries naming an edition or subscriber that is not there."""
    with db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .outerjoin(Edition, Edition.id == Delivery.edition_id)
                .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(
                    (Edition.id.is_(None))
                    | (Delivery.subscriber_id.is_not(None) & Subscriber.id.is_(None))
                )
            )
            or 0
        )


def wait_until_blocked(db: Database, needle: str) -> None:
    """Until a PostgreSQL backend running a statement containing ``needle`` waits on a lock."""
    deadline = datetime.now(UTC) + timedelta(seconds=BLOCK_WAIT_S)
    while datetime.now(UTC) < deadline:
        with db.engine.connect() as connection:
            found = connection.execute(
                text(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE :needle AND pid <> pg_backend_pid()"
                ),
                {"needle": f"%{needle}%"},
            ).first()
        if found:
            return
        threading.Event().wait(0.05)  # poll again; the bound is BLOCK_WAIT_S
    raise AssertionError(f"no statement with {needle!r} blocked within {BLOCK_WAIT_S} s")
