"""Hostile review of migration 0017 (deliveries' edition and subscriber kept by triggers, not
foreign keys) and the fan-out's locks: each xfail is a defect found, each plain test a promise
that held under attack."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import delete, func, select, text, update

from tests.deliver.ledgerrows import DOMAIN, draft, sending
from tests.deliver.linksupport import BLOCK_WAIT_S, orphans, wait_until_blocked
from tidings.audience.bulk import bulk_delete
from tidings.audience.search import AudienceFilter
from tidings.audience.subscribers import erase
from tidings.config import Settings
from tidings.db.dialect import is_postgres
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Newsletter
from tidings.deliver import ledger


def _replies(db: Database) -> list[str | None]:
    with db.session() as session:
        return list(session.scalars(select(Delivery.last_reply)))


def _only(db: Database, dialect: str) -> None:
    name = "postgresql" if is_postgres(db.engine) else "sqlite"
    if name != dialect:
        pytest.skip(f"a {dialect} attack")


# --- Migrations: the next SQLite batch rebuild of a linked table ------------------------


@pytest.mark.parametrize("table", ["deliveries", "editions", "subscribers"])
def test_a_later_sqlite_batch_rebuild_of_a_linked_table_keeps_the_links(
    db: Database, table: str
) -> None:
    """What the next migration that alters one of these tables does on SQLite (env.py runs
    migrations with foreign keys off and render_as_batch, as here): the rebuild succeeds
    (0017 once left triggers naming the dropped table, and the RENAME failed) and the
    deliveries still point at their edition and subscriber by foreign key."""
    _only(db, "sqlite")
    with db.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
        operations = Operations(MigrationContext.configure(connection))
        with operations.batch_alter_table(table, recreate="always") as batch:
            batch.add_column(sa.Column("r2_probe", sa.Integer, nullable=True))
        connection.commit()
        keys = {
            (row[2], row[3])  # (referred table, column)
            for row in connection.exec_driver_sql("PRAGMA foreign_key_list(deliveries)")
        }
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    assert {("editions", "edition_id"), ("subscribers", "subscriber_id")} <= keys
    assert broken == []


# --- Erasure: no personal data left on the anonymous rows ------------------------------


def test_a_bulk_delete_leaves_no_relay_reply_naming_the_reader(
    db: Database, settings: Settings
) -> None:
    """Held once bulk_delete became the set-based erasure that erase() also is (it kept the
    relay replies, bounce points and inbound copies erase() clears)."""
    made = sending(db, settings, readers=2)
    address, *_ = made.ids
    with db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == made.ids[address])
            .values(last_reply="550 5.1.1 <" + address + ">: mailbox unavailable")
        )
        session.commit()
    assert bulk_delete(db, AudienceFilter(query=address)) == 1
    assert orphans(db) == 0
    assert not [reply for reply in _replies(db) if reply and address in reply]


def test_a_result_written_after_an_erasure_keeps_no_reply_naming_the_reader(
    db: Database, settings: Settings
) -> None:
    """Held once the result write stores no reply on a row whose subscriber_id is NULL (it
    was fenced by the lease only, and put the erased address back)."""
    made = sending(db, settings, readers=1)
    ((address, subscriber_id),) = made.ids.items()
    later = datetime.now(UTC) + timedelta(minutes=5)
    with db.session() as session:
        (claim,) = ledger.claim_due(session, "r2:1", 10, timedelta(minutes=10), later)
        session.commit()
    assert erase(db, subscriber_id)
    reply = f"250 2.0.0 Ok: queued for <{address}>"
    with db.session() as session:
        ledger.record_outcomes(
            session, [claim.outcome(DeliveryState.sent, 250, reply, later)], {made.edition_id}
        )
        session.commit()
    assert orphans(db) == 0
    assert not [r for r in _replies(db) if r and address in r]


# --- PostgreSQL: TRUNCATE no longer reaches deliveries ----------------------------------


def test_truncating_subscribers_on_postgresql_leaves_no_dangling_id(
    db: Database, settings: Settings
) -> None:
    _only(db, "postgresql")
    made = sending(db, settings, readers=2)
    assert made.edition_id
    with db.engine.begin() as connection:
        connection.execute(text("TRUNCATE subscribers CASCADE"))
    assert orphans(db) == 0


def test_a_raw_delete_of_readers_on_postgresql_takes_their_replies(
    db: Database, settings: Settings
) -> None:
    """A DELETE that no service wrote (an operator's psql, a later bulk path racing a change
    of its filter) still leaves no reply quoting the reader: the link trigger clears it."""
    _only(db, "postgresql")
    made = sending(db, settings, readers=2)
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE deliveries SET last_reply = '250 ok <reader@example.ge>'"
                " WHERE edition_id = :e"
            ),
            {"e": made.edition_id},
        )
        connection.execute(text("DELETE FROM subscribers"))
    with db.session() as session:
        kept = session.scalars(
            select(Delivery.last_reply).where(Delivery.edition_id == made.edition_id)
        ).all()
    assert kept and all(reply is None for reply in kept)


# --- Attacks that held -------------------------------------------------------------------


def test_a_bulk_delete_racing_a_fan_out_leaves_no_orphan(db: Database, settings: Settings) -> None:
    """Held: the console's bulk delete (one DELETE of many) waits for the fan-out's
    KEY SHARE locks, then its statement trigger anonymises the rows just committed."""
    _only(db, "postgresql")
    made = draft(db, settings, readers=5)
    errors: list[BaseException] = []
    with db.session() as fanning:
        now = datetime.now(UTC)
        assert ledger.fan_out(fanning, made.edition_id, made.newsletter_id, DOMAIN, now) == 5

        def remove_all() -> None:
            try:
                bulk_delete(db, AudienceFilter(newsletter_id=made.newsletter_id))
            except BaseException as exc:  # handed to the test
                errors.append(exc)

        thread = threading.Thread(target=remove_all, daemon=True)
        thread.start()
        wait_until_blocked(db, "DELETE FROM subscribers")
        fanning.commit()
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive() and not errors
    assert orphans(db) == 0
    with db.session() as session:
        kept = session.scalars(select(Delivery.subscriber_id)).all()
    assert kept == [None] * 5


def test_deleting_newsletters_in_bulk_takes_every_edition_s_deliveries(
    db: Database, settings: Settings
) -> None:
    """Held: one DELETE of several newsletters cascades (a foreign key) to their editions,
    and the editions' trigger fires for those cascaded deletes on both databases."""
    first = sending(db, settings, readers=3, slug="daily")
    second = sending(db, settings, readers=2, slug="weekly")
    with db.session() as session:
        ids = [first.newsletter_id, second.newsletter_id]
        session.execute(delete(Newsletter).where(Newsletter.id.in_(ids)))
        session.commit()
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_the_downgrade_to_0016_brings_the_foreign_keys_back_with_data(
    db: Database, settings: Settings
) -> None:
    """Held: with deliveries (some anonymous) in place, 0017 goes down and up again, and on
    the way down the foreign keys hold what the triggers held."""
    from tidings.db.migrate import downgrade, upgrade

    made = sending(db, settings, readers=3)
    gone = next(iter(made.ids.values()))
    assert erase(db, gone)
    downgrade(db.engine, "0016")
    try:
        inspector = sa.inspect(db.engine)
        targets = {fk["referred_table"] for fk in inspector.get_foreign_keys("deliveries")}
        assert {"editions", "subscribers"} <= targets
    finally:
        upgrade(db.engine)
    assert orphans(db) == 0
