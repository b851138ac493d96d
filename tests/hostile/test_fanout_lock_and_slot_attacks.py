"""Hostile review of two changes: the fan-out holding its readers with one shared advisory
lock and the deliveries' variant kept by statement triggers (migration 0018, ledger/fanout.py
``_hold_links``), and a connection slot taken in one INSERT ... SELECT ... ON CONFLICT
(deliver/limitslots.py ``take_slot``). The four defects it found are fixed (a comment
above each test that showed one names it); the others are attacks that held (a comment says what
each tried). Races use real connections on PostgreSQL, ordered by observed lock waits
(``pg_stat_activity``), never by sleeps."""

import functools
import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from tests.deliver.ledgerrows import DOMAIN, Readers, draft
from tests.deliver.limitsupport import limit_statements
from tests.deliver.linksupport import (
    BLOCK_WAIT_S,
    add_variant,
    dangling_variants,
    in_thread,
    orphans,
    wait_until_blocked,
)
from tidings.audience.subscribers import erase
from tidings.config import Settings
from tidings.db.dialect import is_postgres
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryState,
    EditionVariant,
    Newsletter,
    SendLimit,
    SendLimitScope,
    SendLimitSlot,
    Subscriber,
    Subscription,
)
from tidings.deliver import ledger, limitadmin, limitslots
from tidings.deliver.limitkeys import Key

RELAY = Key(SendLimitScope.relay, "smtp.example.ge:587")
LEASE = timedelta(seconds=15)
NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)


def _only(db: Database, dialect: str) -> None:
    name = "postgresql" if is_postgres(db.engine) else "sqlite"
    if name != dialect:
        pytest.skip(f"a {dialect} attack")


def _fan_out(
    session: Session,
    made: Readers,
    sections: Sequence[str] = (),
    variants: Mapping[int, Collection[str]] | None = None,
) -> int:
    now = datetime.now(UTC)
    return ledger.fan_out(
        session, made.edition_id, made.newsletter_id, DOMAIN, now, sections, variants=variants
    )


def _sport_variant(db: Database, made: Readers) -> int:
    """A variant of ``made``'s edition for readers who chose "sport" (all of them here)."""
    with db.session() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.newsletter_id == made.newsletter_id)
            .values(sections=["sport"])
        )
        session.commit()
    return add_variant(db, made.edition_id)


# --- Change A: the readers' advisory lock --------------------------------------------------


# Was a defect (fixed): a fan-out in a REPEATABLE READ or SERIALIZABLE transaction reads
# readers from a snapshot taken before an erasure committed; the shared advisory lock does not
# fail it (0017 locked each reader FOR KEY SHARE, which fails on a row deleted since the
# snapshot) and the insert check reads the same snapshot, so it queues deliveries naming
# erased subscribers
@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
def test_a_snapshot_fan_out_after_an_erasure_names_no_erased_reader(
    db: Database, settings: Settings, isolation: str
) -> None:
    _only(db, "postgresql")
    made = draft(db, settings, readers=3)
    gone = next(iter(made.ids.values()))
    with db.engine.connect() as raw:
        connection = raw.execution_options(isolation_level=isolation)
        with Session(bind=connection) as fanning:
            fanning.scalar(select(func.count()).select_from(Subscriber))  # the snapshot
            assert erase(db, gone)
            try:
                _fan_out(fanning, made)
                fanning.commit()
            except DBAPIError:
                fanning.rollback()  # refusing is a fine answer
    assert orphans(db) == 0


# Was a defect (fixed): deleting a variant while a fan-out queues deliveries to it leaves them
# naming the deleted variant: the insert check reads edition_variants without a lock (0018
# dropped the foreign key's KEY SHARE) and variants_gone's UPDATE cannot see the fan-out's
# uncommitted rows; nothing makes either wait for the other
def test_deleting_a_variant_while_a_fan_out_uses_it_leaves_no_dangling_variant(
    db: Database, settings: Settings
) -> None:
    _only(db, "postgresql")
    made = draft(db, settings, readers=3)
    variant_id = _sport_variant(db, made)
    with db.engine.connect() as deleting:
        deleting.execute(delete(EditionVariant).where(EditionVariant.id == variant_id))

        def fan_out_and_commit() -> None:
            with db.session() as session:
                _fan_out(session, made, sections=["sport"], variants={variant_id: {"sport"}})
                session.commit()

        thread, errors = in_thread(fan_out_and_commit)
        wait_until_blocked(db, "tidings_hold_links", thread)
        deleting.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive()
    # A refused fan-out would be fine (the variant is gone when it looks); a committed one
    # must not name the deleted variant.
    assert all(isinstance(error, IntegrityError) for error in errors), errors
    assert dangling_variants(db) == 0


# Held: an erasure that committed its DELETE's lock first (it holds the advisory lock
# exclusively, uncommitted) makes a READ COMMITTED fan-out wait in tidings_hold_links; the
# fan-out's INSERT then reads a new snapshot and queues nothing to the erased reader.
def test_a_fan_out_waits_for_an_uncommitted_erasure_then_skips_the_reader(
    db: Database, settings: Settings
) -> None:
    _only(db, "postgresql")
    made = draft(db, settings, readers=3)
    gone = next(iter(made.ids.values()))
    counted: list[int] = []

    def fan_out_and_commit() -> None:
        with db.session() as session:
            counted.append(_fan_out(session, made))
            session.commit()

    with db.engine.connect() as erasing:
        erasing.execute(delete(Subscriber).where(Subscriber.id == gone))
        thread, errors = in_thread(fan_out_and_commit)
        wait_until_blocked(db, "tidings_hold_links")
        erasing.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive() and not errors
    assert counted == [2]
    assert orphans(db) == 0


# Held: erase() (one reader) and TRUNCATE (which fires no DELETE trigger and takes no
# advisory lock, but waits on the fan-out's ACCESS SHARE of subscribers) both wait for an
# uncommitted fan-out, then anonymise the deliveries it committed.
@pytest.mark.parametrize("how", ["erase", "truncate"])
def test_removing_readers_during_a_fan_out_leaves_no_orphan(
    db: Database, settings: Settings, how: str
) -> None:
    _only(db, "postgresql")
    made = draft(db, settings, readers=3)
    first = next(iter(made.ids.values()))

    def remove() -> None:
        if how == "erase":
            erase(db, first)
            return
        with db.engine.begin() as connection:
            connection.execute(text("TRUNCATE subscribers CASCADE"))

    with db.session() as fanning:
        assert _fan_out(fanning, made) == 3
        thread, errors = in_thread(remove)
        wait_until_blocked(db, "DELETE FROM subscribers" if how == "erase" else "TRUNCATE")
        fanning.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive() and not errors
    assert orphans(db) == 0


# Held: a TRUNCATE of subscribers that came first (uncommitted; its trigger takes no
# advisory lock) makes the fan-out's INSERT wait on the table's lock; it then reads the
# emptied table and queues nothing.
def test_a_fan_out_after_an_uncommitted_truncate_queues_nobody(
    db: Database, settings: Settings
) -> None:
    _only(db, "postgresql")
    made = draft(db, settings, readers=3)
    counted: list[int] = []

    def fan_out_and_commit() -> None:
        with db.session() as session:
            counted.append(_fan_out(session, made))
            session.commit()

    with db.engine.connect() as emptying:
        emptying.execute(text("TRUNCATE subscribers CASCADE"))
        thread, errors = in_thread(fan_out_and_commit)
        wait_until_blocked(db, "INSERT INTO deliveries")
        emptying.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive() and not errors
    assert counted == [0]
    assert orphans(db) == 0


# Held: an erasure in REPEATABLE READ (its trigger's UPDATE would not see a fan-out that
# committed while it waited for the lock) is refused, not left to miss those deliveries.
def test_an_erasure_in_repeatable_read_is_refused(db: Database, settings: Settings) -> None:
    _only(db, "postgresql")
    made = draft(db, settings, readers=2)
    gone = next(iter(made.ids.values()))
    with db.engine.connect() as raw:
        connection = raw.execution_options(isolation_level="REPEATABLE READ")
        with pytest.raises(DBAPIError, match="READ COMMITTED"):
            connection.execute(delete(Subscriber).where(Subscriber.id == gone))
        connection.rollback()
    with db.session() as session:
        assert session.get(Subscriber, gone) is not None


# Held: deleting the newsletter (a cascade to its editions, whose trigger deletes their
# deliveries) waits for the fan-out's lock on the edition, then takes its committed rows.
def test_deleting_the_newsletter_during_a_fan_out_takes_its_deliveries(
    db: Database, settings: Settings
) -> None:
    _only(db, "postgresql")
    made = draft(db, settings, readers=3)

    def remove() -> None:
        with db.session() as session:
            session.execute(delete(Newsletter).where(Newsletter.id == made.newsletter_id))
            session.commit()

    with db.session() as fanning:
        assert _fan_out(fanning, made) == 3
        thread, errors = in_thread(remove)
        wait_until_blocked(db, "DELETE FROM newsletters")
        fanning.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive() and not errors
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0


# Held: 0018 goes down to 0017 and up again with deliveries on a variant in place; after it
# the fan-out's lock function is back, another edition's variant is still refused, and
# deleting the variant still clears it from its deliveries (on SQLite 0018 is a no-op).
def test_the_downgrade_of_0018_and_upgrade_again_keeps_every_rule(
    db: Database, settings: Settings
) -> None:
    from tidings.db.migrate import downgrade, upgrade

    made = draft(db, settings, readers=2)
    variant_id = _sport_variant(db, made)
    with db.session() as session:
        assert _fan_out(session, made, sections=["sport"], variants={variant_id: {"sport"}}) == 2
        session.commit()
    downgrade(db.engine, "0017")
    upgrade(db.engine)
    other = draft(db, settings, readers=1, slug="other")
    other_variant = _sport_variant(db, other)
    if is_postgres(db.engine):
        with pytest.raises(DBAPIError), db.session() as session:
            session.add(
                Delivery(
                    edition_id=made.edition_id,
                    subscriber_id=next(iter(other.ids.values())),
                    state=DeliveryState.queued,
                    message_id="<1@x>",
                    variant_id=other_variant,
                )
            )
            session.commit()
    with db.session() as session:
        assert _fan_out(session, other, sections=["sport"], variants={other_variant: {"sport"}})
        session.execute(delete(EditionVariant).where(EditionVariant.id == variant_id))
        session.commit()
    assert dangling_variants(db) == 0
    assert orphans(db) == 0


# --- Change B: one statement takes a connection slot ---------------------------------------


def _limit(db: Database, connections: int) -> None:
    limitadmin.set_limit(db, "relay", RELAY.name, per_second=None, connections=connections)


def _take(db: Database, holder: str, now: datetime | None = None) -> int | None:
    with db.session() as session:
        slot = limitslots.take_slot(session, RELAY, holder, LEASE, now)
        session.commit()
        return slot


def _live(db: Database, at: datetime | None = None) -> list[int]:
    with db.session() as session:
        moment = func.now() if at is None and is_postgres(db.engine) else at
        if moment is None:
            moment = datetime.now(UTC)
        return sorted(
            session.scalars(select(SendLimitSlot.slot).where(SendLimitSlot.expires_at > moment))
        )


# Held: a taker whose INSERT meets another's uncommitted slot 0 waits for it; when that
# commits, the lost race is told from a full limit and the taker gets slot 1, not None.
def test_a_lost_race_is_retried_and_gets_the_next_slot(db: Database) -> None:
    _only(db, "postgresql")
    _limit(db, 3)
    got: list[int | None] = []
    with db.session() as first:
        assert limitslots.take_slot(first, RELAY, "first", LEASE) == 0
        thread, errors = in_thread(lambda: got.append(_take(db, "second")))
        wait_until_blocked(db, "send_limit_slots")
        first.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive() and not errors
    assert got == [1]


# Held: eight takers released together on a limit of two: exactly two slots, 0 and 1, and
# every other taker gets None (none loops, none errs); on SQLite too, where the takers wait
# for its one writer.
def test_eight_concurrent_takers_never_hold_more_than_the_limit(db: Database) -> None:
    _limit(db, 2)
    start = threading.Barrier(8)
    got: list[int | None] = []

    def take(n: int) -> None:
        start.wait(BLOCK_WAIT_S)
        got.append(_take(db, f"w{n}"))

    runs = [in_thread(functools.partial(take, n)) for n in range(8)]
    for thread, _ in runs:
        thread.join(BLOCK_WAIT_S)
    assert not any(thread.is_alive() or errors for thread, errors in runs)
    assert sorted(slot for slot in got if slot is not None) == [0, 1]
    assert len(got) == 8
    assert _live(db) == [0, 1]


# Held: two takers of one expired slot (limit 1): the second waits on the first's row, then
# finds a live lease and gets None; one holder, not two.
def test_an_expired_slot_is_taken_over_by_one_taker_only(db: Database) -> None:
    _only(db, "postgresql")
    _limit(db, 1)
    with db.session() as session:
        session.execute(
            insert(SendLimitSlot).values(
                scope=RELAY.scope.value,
                name=RELAY.name,
                slot=0,
                holder="dead",
                expires_at=datetime.now(UTC) - timedelta(hours=1),
            )
        )
        session.commit()
    got: list[int | None] = []
    with db.session() as first:
        assert limitslots.take_slot(first, RELAY, "first", LEASE) == 0
        thread, errors = in_thread(lambda: got.append(_take(db, "second")))
        wait_until_blocked(db, "send_limit_slots")
        first.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive() and not errors
    assert got == [None]
    with db.session() as session:
        assert session.scalars(select(SendLimitSlot.holder)).all() == ["first"]


# Held: a slot taken over after its lease ran out stays the new holder's: the dead holder
# waking up can neither give it back nor renew it.
def test_a_taken_over_slot_cannot_be_released_or_renewed_by_its_old_holder(
    db: Database,
) -> None:
    _limit(db, 1)
    assert _take(db, "old", NOW) == 0
    later = NOW + LEASE + timedelta(minutes=1)
    assert _take(db, "new", later) == 0
    with db.session() as session:
        limitslots.release_slot(session, RELAY, 0, "old")
        assert limitslots.renew_slots(session, "old", LEASE, later) == 0
        session.commit()
    with db.session() as session:
        assert session.scalars(select(SendLimitSlot.holder)).all() == ["new"]
    assert _take(db, "third", later) is None


# Held: a taker in REPEATABLE READ whose snapshot predates another's committed slot 0 does
# not take it twice: PostgreSQL refuses its ON CONFLICT DO UPDATE (a serialization error),
# or it gets None; no loop.
def test_a_repeatable_read_taker_never_exceeds_the_limit(db: Database) -> None:
    _only(db, "postgresql")
    _limit(db, 1)
    got: list[int | None] = []
    with db.engine.connect() as raw:
        connection = raw.execution_options(isolation_level="REPEATABLE READ")
        with Session(bind=connection) as late:
            late.scalar(select(func.count()).select_from(SendLimitSlot))  # the snapshot
            assert _take(db, "first") == 0
            try:
                got.append(limitslots.take_slot(late, RELAY, "late", LEASE))
                late.commit()
            except DBAPIError:
                late.rollback()
    assert got in ([], [None])
    assert _live(db) == [0]


# Held: the highest limit (1,000) with 999 slots held gives the last one, then None, in two
# statements (no walk over the 1,000 numbers).
def test_the_highest_limit_is_taken_to_the_last_slot_in_bounded_statements(db: Database) -> None:
    _limit(db, 1000)
    with db.session() as session:
        session.execute(
            insert(SendLimitSlot),
            [
                {
                    "scope": RELAY.scope.value,
                    "name": RELAY.name,
                    "slot": n,
                    "holder": f"h{n}",
                    "expires_at": NOW + LEASE,
                }
                for n in range(999)
            ],
        )
        session.commit()
    assert _take(db, "last", NOW) == 999
    with limit_statements(db) as seen:
        assert _take(db, "one too many", NOW) is None
    assert len(seen) <= 2
    assert len(_live(db, NOW)) == 1000


# Held: a limit of 0 (or below) put in by hand is refused by the table's check, so no taker
# ever meets one.
def test_a_limit_of_zero_cannot_be_stored(db: Database) -> None:
    _limit(db, 1)
    with pytest.raises(DBAPIError), db.session() as session:
        session.execute(
            update(SendLimit).where(SendLimit.name == RELAY.name).values(max_connections=0)
        )
        session.commit()


# Was a defect (fixed) (older than a72942e, kept by it): after the limit is lowered from 3 to
# 1 while slots 1 and 2 stay held by live leases, take_slot hands out the free slot 0, so
# three connections run at once under a limit of one: slots numbered past a lowered limit are
# not counted, though their holders keep (and renew) them
def test_a_lowered_limit_is_obeyed_while_higher_slots_are_held(db: Database) -> None:
    _limit(db, 3)
    assert [_take(db, name) for name in ("a", "b", "c")] == [0, 1, 2]
    with db.session() as session:
        limitslots.release_slot(session, RELAY, 0, "a")
        session.commit()
    _limit(db, 1)
    assert _take(db, "d") is None


# Was a defect (fixed): on PostgreSQL an UPDATE of a delivery's edition, subscriber or variant
# is not checked at all (0017/0018 check INSERTs only; the foreign keys checked both), so a
# delivery can be made to name a row that does not exist
@pytest.mark.parametrize("column", ["edition_id", "subscriber_id", "variant_id"])
def test_an_update_cannot_point_a_delivery_at_nothing(
    db: Database, settings: Settings, column: str
) -> None:
    _only(db, "postgresql")
    made = draft(db, settings, readers=1)
    variant_id = _sport_variant(db, made)
    with db.session() as session:
        _fan_out(session, made, sections=["sport"], variants={variant_id: {"sport"}})
        session.commit()
    try:
        with db.engine.begin() as connection:
            connection.execute(update(Delivery).values({column: 2_000_000_000}))
    except DBAPIError:
        pass  # refused: the promise holds
    assert orphans(db) == 0 and dangling_variants(db) == 0
