"""Hostile review of migration 0022 (due deliveries found edition by edition).

Attacks the change withstands, and three defects it had, each fixed and kept as a test:
a result writer's close of a mostly-sent edition read the edition whole on PostgreSQL,
SQLite never used the new partial index (its IN list was bound), and an edition with a
lower id took every claim ahead of rows of another edition that were due earlier.
"""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from tests.deliver.ledgerrows import DOMAIN, sending
from tests.plans import blocks, crowd, plan_of, seq_scanned, sqlite_plan, statements_of
from tidings.config import Settings
from tidings.db.engine import Database, open_database
from tidings.db.migrate import downgrade, upgrade
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus
from tidings.deliver import ledger
from tidings.deliver.heartbeats import sending_is_due
from tidings.deliver.ledger.sent import close_sent

LEASE = timedelta(seconds=60)


def _postgres_only(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")


def _set(db: Database, edition_id: int, **values: object) -> None:
    with db.session() as session:
        session.execute(update(Delivery).where(Delivery.edition_id == edition_id).values(**values))
        session.commit()


def _ids(db: Database, edition_id: int) -> list[int]:
    with db.session() as session:
        return list(
            session.scalars(
                select(Delivery.id).where(Delivery.edition_id == edition_id).order_by(Delivery.id)
            )
        )


# --- what held -----------------------------------------------------------------------------


def test_concurrent_claimers_never_take_one_delivery_twice_nor_a_retry_early(
    db: Database, settings: Settings
) -> None:
    """Six claimers, each on its own engine (as separate processes would be), claim small
    batches from two sending editions until nothing is due: every due delivery is claimed
    exactly once, and the deferred rows due in an hour are never taken."""
    first = sending(db, settings, readers=60, slug="first")
    second = sending(db, settings, readers=40, slug="second")
    later = datetime.now(UTC) + timedelta(hours=1)
    deferred = _ids(db, first.edition_id)[:10]
    with db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(deferred))
            .values(state=DeliveryState.deferred, next_attempt_at=later)
        )
        session.commit()
    url = db.engine.url.render_as_string(hide_password=False)
    taken: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def claimer(n: int) -> None:
        own = open_database(url)
        try:
            start.wait()
            for round_ in range(200):
                with own.session() as session:
                    claims = ledger.claim_due(session, f"w{n}:{round_}", 7, LEASE)
                    session.commit()
                if not claims:
                    return
                with lock:
                    taken.extend(c.delivery_id for c in claims)
        except BaseException as error:
            errors.append(error)
        finally:
            own.dispose()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    due = (set(_ids(db, first.edition_id)) - set(deferred)) | set(_ids(db, second.edition_id))
    assert len(taken) == len(set(taken)), "a delivery was claimed twice"
    assert set(taken) == due
    assert not set(deferred) & set(taken)


def test_an_edition_whose_due_rows_are_all_locked_does_not_hold_back_the_next(
    db: Database, settings: Settings
) -> None:
    """A worker holds every due row of the first edition in an open claim; a second claim
    takes the other edition's rows at once (SKIP LOCKED inside each edition's LATERAL),
    without waiting on the held rows and without taking them."""
    _postgres_only(db)
    first = sending(db, settings, readers=20, slug="first")
    second = sending(db, settings, readers=5, slug="second")
    with db.session() as holder:
        held = ledger.claim_due(holder, "w1:1", 20, LEASE)
        assert {c.edition_id for c in held} == {first.edition_id} and len(held) == 20
        with db.session() as other:
            other.execute(text("SET LOCAL lock_timeout = '2s'"))
            claims = ledger.claim_due(other, "w2:1", 20, LEASE)
            other.commit()
        holder.rollback()
    assert {c.edition_id for c in claims} == {second.edition_id} and len(claims) == 5


def test_a_paused_edition_s_rows_are_never_claimed_and_sending_is_due_agrees(
    db: Database, settings: Settings
) -> None:
    paused = sending(db, settings, readers=5, slug="paused")
    with db.session() as session:
        session.execute(
            update(Edition)
            .where(Edition.id == paused.edition_id)
            .values(status=EditionStatus.paused)
        )
        session.commit()
    now = datetime.now(UTC) + timedelta(seconds=1)
    assert not sending_is_due(db, now)
    with db.session() as session:
        assert not ledger.has_due_work(session, now)
        assert ledger.claim_due(session, "w:1", 10, LEASE, now) == []


def test_migration_0022_goes_down_and_up_and_its_indexes_have_the_models_predicates(
    db: Database,
) -> None:
    """Alembic's model comparison does not look at an index's WHERE: the predicates in the
    database are checked here, after a round trip 0022 -> 0021 -> 0022."""
    downgrade(db.engine, "0021")
    upgrade(db.engine)
    with db.engine.connect() as connection:
        if db.engine.dialect.name == "postgresql":
            rows = connection.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes"
                    " WHERE indexname IN ('ix_deliveries_due', 'ix_editions_sending')"
                )
            ).all()
        else:
            rows = connection.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                    " AND name IN ('ix_deliveries_due', 'ix_editions_sending')"
                )
            ).all()
    found = {name: definition for name, definition in rows}
    due, sending_ = found["ix_deliveries_due"], found["ix_editions_sending"]
    assert "(edition_id, next_attempt_at)" in due and "queued" in due and "deferred" in due
    assert "sending" not in due
    assert "sending" in sending_


# --- defects found, fixed ------------------------------------------------------------------


def test_closing_a_mostly_sent_edition_reads_few_pages(db: Database, settings: Settings) -> None:
    """Every batch of results runs close_sent for its editions (results.py). With 29,000 of
    30,001 deliveries sent, asking "is any still open" must not read the sent ones."""
    _postgres_only(db)
    made = sending(db, settings, readers=1)
    crowd(db, made.newsletter_id, 30_000)
    with db.session() as session:
        ledger.fan_out(session, made.edition_id, made.newsletter_id, DOMAIN, datetime.now(UTC))
        session.commit()
    cut = _ids(db, made.edition_id)[29_000]
    with db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id == made.edition_id, Delivery.id < cut)
            .values(state=DeliveryState.sent)
        )
        session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE deliveries, editions"))

    def close() -> None:
        with db.session() as session:
            assert close_sent(session, datetime.now(UTC), [made.edition_id]) == []
            session.rollback()

    (asked,) = statements_of(db, close, "deliveries")
    plan = plan_of(db, asked, analyze=True)
    assert "deliveries" not in seq_scanned(plan), plan
    assert blocks(plan) < 40, plan


def test_on_sqlite_claims_and_the_due_question_use_the_partial_index(
    db: Database, settings: Settings
) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's planner")
    sending(db, settings, readers=3)
    now = datetime.now(UTC)

    def claim() -> None:
        with db.session() as session:
            ledger.claim_due(session, "w:1", 2, LEASE, now)
            session.rollback()

    def due() -> None:
        with db.session() as session:
            ledger.has_due_work(session, now)

    plans = [
        sqlite_plan(db, s) for run in (claim, due) for s in statements_of(db, run, "deliveries")
    ]
    assert len(plans) == 2
    for plan in plans:
        assert "ix_deliveries_due" in plan, plan
        assert "SCAN deliveries\n" not in plan + "\n", plan


def test_rows_due_earlier_are_not_starved_by_an_edition_with_a_lower_id(
    db: Database, settings: Settings
) -> None:
    """A breaking one-off started at 9:55 (higher id); the weekly, created on Monday (lower
    id), starts at 10:00. The one-off's rest must not wait behind the whole weekly."""
    weekly = sending(db, settings, readers=6, slug="weekly")
    breaking = sending(db, settings, readers=3, slug="breaking")
    assert weekly.edition_id < breaking.edition_id
    now = datetime.now(UTC)
    _set(db, breaking.edition_id, next_attempt_at=now - timedelta(minutes=5))
    _set(db, weekly.edition_id, next_attempt_at=now)
    with db.session() as session:
        claims = ledger.claim_due(session, "w:1", 3, LEASE, now + timedelta(seconds=1))
        session.commit()
    assert {c.edition_id for c in claims} == {breaking.edition_id}
