"""A delivery's edition, subscriber and variant without foreign keys (migrations 0017 and
0018): deleting an edition takes its deliveries, erasing a subscriber leaves theirs
anonymous, deleting a variant leaves theirs on the edition's own parts, an insert naming none
of them is refused, and on PostgreSQL neither edition nor reader can slip away while a
fan-out runs."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from tests.deliver.ledgerrows import DOMAIN, draft
from tests.deliver.linksupport import (
    BLOCK_WAIT_S,
    add_variant,
    in_thread,
    orphans,
    wait_until_blocked,
)
from tidings.config import Settings
from tidings.db.dialect import is_postgres
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryState,
    Edition,
    EditionVariant,
    Newsletter,
    Subscriber,
)
from tidings.deliver import ledger


def _fan_out(db: Database, edition_id: int, newsletter_id: int) -> int:
    with db.session() as session:
        count = ledger.fan_out(session, edition_id, newsletter_id, DOMAIN, datetime.now(UTC))
        session.commit()
        return count


def _subscribers_of(db: Database, edition_id: int) -> list[int | None]:
    with db.session() as session:
        return sorted(
            session.scalars(
                select(Delivery.subscriber_id).where(Delivery.edition_id == edition_id)
            ),
            key=lambda s: (s is None, s or 0),
        )


def test_deleting_an_edition_deletes_its_deliveries(db: Database, settings: Settings) -> None:
    made = draft(db, settings, readers=3)
    assert _fan_out(db, made.edition_id, made.newsletter_id) == 3
    with db.session() as session:
        session.execute(delete(Edition).where(Edition.id == made.edition_id))
        session.commit()
    assert _subscribers_of(db, made.edition_id) == []


def test_deleting_a_newsletter_deletes_its_editions_deliveries(
    db: Database, settings: Settings
) -> None:
    made = draft(db, settings, readers=2)
    _fan_out(db, made.edition_id, made.newsletter_id)
    with db.session() as session:
        session.execute(delete(Newsletter).where(Newsletter.id == made.newsletter_id))
        session.commit()
    assert _subscribers_of(db, made.edition_id) == []
    assert orphans(db) == 0


def test_erasing_a_subscriber_keeps_their_delivery_anonymous(
    db: Database, settings: Settings
) -> None:
    made = draft(db, settings, readers=3)
    _fan_out(db, made.edition_id, made.newsletter_id)
    gone, *kept = made.ids.values()
    with db.session() as session:
        session.execute(delete(Subscriber).where(Subscriber.id == gone))
        session.commit()
    assert _subscribers_of(db, made.edition_id) == [*sorted(kept), None]
    assert orphans(db) == 0


@pytest.mark.parametrize("missing", ["edition", "subscriber"])
def test_a_delivery_naming_no_edition_or_subscriber_is_refused(
    db: Database, settings: Settings, missing: str
) -> None:
    made = draft(db, settings, readers=1)
    (subscriber_id,) = made.ids.values()
    with db.session() as session:
        session.add(
            Delivery(
                edition_id=made.edition_id + 1000 if missing == "edition" else made.edition_id,
                subscriber_id=subscriber_id + 1000 if missing == "subscriber" else subscriber_id,
                state=DeliveryState.queued,
                message_id="<1@x>",
            )
        )
        with pytest.raises(IntegrityError):
            session.commit()


def _queue(db: Database, edition_id: int, subscriber_id: int, variant_id: int) -> None:
    with db.session() as session:
        session.add(
            Delivery(
                edition_id=edition_id,
                subscriber_id=subscriber_id,
                state=DeliveryState.queued,
                message_id="<1@x>",
                variant_id=variant_id,
            )
        )
        session.commit()


def test_a_delivery_naming_no_variant_is_refused(db: Database, settings: Settings) -> None:
    made = draft(db, settings, readers=1)
    (subscriber_id,) = made.ids.values()
    with pytest.raises(IntegrityError):
        _queue(db, made.edition_id, subscriber_id, add_variant(db, made.edition_id) + 1000)


def test_a_delivery_naming_another_editions_variant_is_refused(
    db: Database, settings: Settings
) -> None:
    if not is_postgres(db.engine):
        pytest.skip("SQLite's foreign key checks only that the variant exists")
    made = draft(db, settings, readers=1)
    other = draft(db, settings, readers=1, slug="other")
    (subscriber_id,) = made.ids.values()
    with pytest.raises(IntegrityError):
        _queue(db, made.edition_id, subscriber_id, add_variant(db, other.edition_id))


def test_deleting_a_variant_leaves_its_deliveries_on_the_editions_own_parts(
    db: Database, settings: Settings
) -> None:
    made = draft(db, settings, readers=2)
    first, second = made.ids.values()
    variant_id = add_variant(db, made.edition_id)
    _queue(db, made.edition_id, first, variant_id)
    _queue(db, made.edition_id, second, variant_id)
    with db.session() as session:
        session.execute(delete(EditionVariant).where(EditionVariant.id == variant_id))
        session.commit()
        assert session.scalars(
            select(Delivery.variant_id).where(Delivery.edition_id == made.edition_id)
        ).all() == [None, None]
    with db.session() as session:
        session.execute(delete(Edition).where(Edition.id == made.edition_id))
        session.commit()
    assert _subscribers_of(db, made.edition_id) == []


def test_deleting_an_edition_with_variants_deletes_its_deliveries(
    db: Database, settings: Settings
) -> None:
    made = draft(db, settings, readers=1)
    (subscriber_id,) = made.ids.values()
    _queue(db, made.edition_id, subscriber_id, add_variant(db, made.edition_id))
    with db.session() as session:
        session.execute(delete(Edition).where(Edition.id == made.edition_id))
        session.commit()
    assert _subscribers_of(db, made.edition_id) == []
    assert orphans(db) == 0


def _postgres_only(db: Database) -> None:
    if not is_postgres(db.engine):
        pytest.skip("SQLite has one writer at a time: no fan-out runs beside an erasure")


def test_an_erasure_waits_for_a_running_fan_out_and_then_clears_its_rows(
    db: Database, settings: Settings
) -> None:
    _postgres_only(db)
    made = draft(db, settings, readers=3)
    gone, *kept = made.ids.values()
    with db.session() as fanning:
        now = datetime.now(UTC)
        assert ledger.fan_out(fanning, made.edition_id, made.newsletter_id, DOMAIN, now) == 3

        def erase() -> None:
            with db.session() as session:
                session.execute(delete(Subscriber).where(Subscriber.id == gone))
                session.commit()

        thread, errors = in_thread(erase)
        wait_until_blocked(db, "DELETE FROM subscribers")
        fanning.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive() and not errors
    assert _subscribers_of(db, made.edition_id) == [*sorted(kept), None]
    assert orphans(db) == 0


def test_a_fan_out_waits_for_a_running_erasure_and_skips_the_erased(
    db: Database, settings: Settings
) -> None:
    _postgres_only(db)
    made = draft(db, settings, readers=3)
    gone, *kept = made.ids.values()
    counts: list[int] = []
    with db.session() as erasing:
        erasing.execute(delete(Subscriber).where(Subscriber.id == gone))
        thread, errors = in_thread(
            lambda: counts.append(_fan_out(db, made.edition_id, made.newsletter_id))
        )
        # The fan-out waits to hold the links (migration 0018) until the erasure commits.
        wait_until_blocked(db, "tidings_hold_links")
        erasing.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive() and not errors
    assert counts == [2]
    assert _subscribers_of(db, made.edition_id) == sorted(kept)
    assert orphans(db) == 0


def test_deleting_an_edition_waits_for_its_fan_out_and_then_takes_its_rows(
    db: Database, settings: Settings
) -> None:
    _postgres_only(db)
    made = draft(db, settings, readers=3)
    with db.session() as fanning:
        now = datetime.now(UTC)
        assert ledger.fan_out(fanning, made.edition_id, made.newsletter_id, DOMAIN, now) == 3

        def drop_edition() -> None:
            with db.session() as session:
                session.execute(delete(Edition).where(Edition.id == made.edition_id))
                session.commit()

        thread, errors = in_thread(drop_edition)
        wait_until_blocked(db, "DELETE FROM editions")
        fanning.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive() and not errors
    assert _subscribers_of(db, made.edition_id) == []
    assert orphans(db) == 0


def test_an_erasure_outside_read_committed_is_refused(db: Database, settings: Settings) -> None:
    """Under an older snapshot it could miss deliveries a fan-out just committed."""
    _postgres_only(db)
    made = draft(db, settings, readers=1)
    (subscriber_id,) = made.ids.values()
    repeatable = db.engine.execution_options(isolation_level="REPEATABLE READ")
    with Session(repeatable) as session, pytest.raises(DBAPIError, match="READ COMMITTED"):
        session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))


def test_a_variant_delete_outside_read_committed_is_refused(
    db: Database, settings: Settings
) -> None:
    """Under an older snapshot it could miss deliveries a fan-out committed while it waited
    for the links lock, and leave them naming the deleted variant."""
    _postgres_only(db)
    made = draft(db, settings, readers=1)
    variant_id = add_variant(db, made.edition_id)
    repeatable = db.engine.execution_options(isolation_level="REPEATABLE READ")
    with Session(repeatable) as session, pytest.raises(DBAPIError, match="READ COMMITTED"):
        session.execute(delete(EditionVariant).where(EditionVariant.id == variant_id))


@pytest.mark.parametrize("table", ["editions", "edition_variants"])
def test_emptying_editions_or_variants_leaves_no_delivery_naming_them(
    db: Database, settings: Settings, table: str
) -> None:
    """TRUNCATE fires no DELETE trigger, and no foreign key makes its CASCADE reach the
    ledger any more: the TRUNCATE triggers of 0018 do."""
    _postgres_only(db)
    made = draft(db, settings, readers=2)
    first, second = made.ids.values()
    variant_id = add_variant(db, made.edition_id)
    _queue(db, made.edition_id, first, variant_id)
    _queue(db, made.edition_id, second, variant_id)
    with db.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {table} CASCADE"))
    with db.engine.connect() as connection:
        left = connection.execute(select(Delivery.edition_id, Delivery.variant_id)).all()
    assert left == ([] if table == "editions" else [(made.edition_id, None)] * 2)
    assert orphans(db) == 0


def test_two_fan_outs_of_one_edition_at_once_queue_each_reader_once(
    db: Database, settings: Settings
) -> None:
    """The second waits for the first (the edition's lock), then adds nobody twice."""
    _postgres_only(db)
    made = draft(db, settings, readers=3)
    counts: list[int] = []
    with db.session() as first:
        now = datetime.now(UTC)
        assert ledger.fan_out(first, made.edition_id, made.newsletter_id, DOMAIN, now) == 3
        thread, errors = in_thread(
            lambda: counts.append(_fan_out(db, made.edition_id, made.newsletter_id))
        )
        wait_until_blocked(db, "FOR NO KEY UPDATE")
        first.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive() and not errors
    assert counts == [0]
    assert _subscribers_of(db, made.edition_id) == sorted(made.ids.values())
