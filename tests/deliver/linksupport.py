"""Helpers of the tests on the ledger's links (a delivery's edition, subscriber and variant):
counting orphans and dangling variants, making a variant, running work on a thread of its own,
and waiting until a statement of another connection waits on a lock."""

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from tidings.db.engine import Database
from tidings.db.models import Delivery, Edition, EditionVariant, Subscriber

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


def dangling_variants(db: Database) -> int:
    """Deliveries naming a variant that is not there."""
    with db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(
                    Delivery.variant_id.is_not(None),
                    ~select(EditionVariant.id)
                    .where(EditionVariant.id == Delivery.variant_id)
                    .exists(),
                )
            )
            or 0
        )


def add_variant(db: Database, edition_id: int) -> int:
    """A stored variant of the edition for readers who chose "sport"; its id."""
    with db.session() as session:
        variant = EditionVariant(
            edition_id=edition_id,
            choice_key="sport",
            sections=["sport"],
            html_body="<p>sport</p>",
            text_body="sport",
            article_count=1,
        )
        session.add(variant)
        session.commit()
        return variant.id


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """``work`` on a thread of its own; what it raised lands in the list, for the test."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the test, which re-raises or checks it
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def wait_until_blocked(db: Database, needle: str, thread: threading.Thread | None = None) -> bool:
    """Until a PostgreSQL backend running a statement containing ``needle`` waits on a lock
    (True), or ``thread``, when given, ends first (False); bounded by BLOCK_WAIT_S."""
    deadline = datetime.now(UTC) + timedelta(seconds=BLOCK_WAIT_S)
    while datetime.now(UTC) < deadline:
        if thread is not None and not thread.is_alive():
            return False
        with db.engine.connect() as connection:
            found = connection.execute(
                text(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE :needle AND pid <> pg_backend_pid()"
                ),
                {"needle": f"%{needle}%"},
            ).first()
        if found:
            return True
        threading.Event().wait(0.05)  # poll again; the bound is BLOCK_WAIT_S
    raise AssertionError(f"no statement with {needle!r} blocked within {BLOCK_WAIT_S} s")
