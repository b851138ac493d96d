"""A paused edition's backlog does not weigh on the editions still sending: claiming, asking
whether anything is due (every few seconds per worker), the readiness check and closing an
edition after each batch of results each read the sending editions' own deliveries through
an index, not the paused one's queue."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

from tests.deliver.ledgerrows import DOMAIN, Readers, sending
from tests.plans import blocks, crowd, plan_of, seq_scanned, sqlite_plan, statements_of
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Edition, EditionStatus
from tidings.deliver import ledger
from tidings.deliver.heartbeats import sending_is_due
from tidings.deliver.ledger.sent import close_sent

BACKLOG = 30_000
LEASE = timedelta(seconds=30)


@pytest.fixture
def paused_backlog(db: Database, settings: Settings) -> tuple[Readers, Readers]:
    """A paused edition with 30,001 queued deliveries, due first, and a sending edition of
    another newsletter with 3 queued after it."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("reads the PostgreSQL planner's plans")
    paused = sending(db, settings, readers=1)
    crowd(db, paused.newsletter_id, BACKLOG)
    with db.session() as session:
        now = datetime.now(UTC) - timedelta(minutes=5)
        ledger.fan_out(session, paused.edition_id, paused.newsletter_id, DOMAIN, now)
        session.execute(
            update(Edition)
            .where(Edition.id == paused.edition_id)
            .values(status=EditionStatus.paused)
        )
        session.commit()
    other = sending(db, settings, readers=3, slug="other")
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE deliveries, editions"))
    return paused, other


def _read_lightly(db: Database, run: Callable[[], object]) -> None:
    """Every statement ``run`` sends to the deliveries reads them through an index, and few
    pages (the paused edition's queue alone is about 300; a claim's own writes, to the rows
    it takes and their indexes, are not counted)."""
    asked = statements_of(db, run, "deliveries")
    assert asked
    for sent in asked:
        plan = plan_of(db, sent, analyze=True)
        assert "deliveries" not in seq_scanned(plan), plan
        reading = plan["Plans"][0] if plan["Node Type"] == "ModifyTable" else plan
        assert blocks(reading) < 40, plan


def test_a_claim_takes_the_sending_edition_s_deliveries_without_reading_the_paused_queue(
    db: Database, paused_backlog: tuple[Readers, Readers]
) -> None:
    _paused, other = paused_backlog

    def claim() -> list[ledger.Claim]:
        with db.session() as session:
            claims = ledger.claim_due(session, "w:1", 2, LEASE)
            session.rollback()
        return claims

    _read_lightly(db, claim)
    claims = claim()
    assert len(claims) == 2 and {c.edition_id for c in claims} == {other.edition_id}


def test_whether_anything_is_due_is_answered_without_reading_the_paused_queue(
    db: Database, paused_backlog: tuple[Readers, Readers]
) -> None:
    now = datetime.now(UTC)

    def due() -> bool:
        with db.session() as session:
            return ledger.has_due_work(session, now)

    _read_lightly(db, due)
    _read_lightly(db, lambda: sending_is_due(db, now))
    assert due() and sending_is_due(db, now)
    assert not sending_is_due(db, now - timedelta(hours=1))


def test_closing_an_edition_after_its_results_does_not_read_the_paused_queue(
    db: Database, paused_backlog: tuple[Readers, Readers]
) -> None:
    """The result writer asks, after every batch, whether the edition has anything open."""
    _paused, other = paused_backlog

    def close() -> list[int]:
        with db.session() as session:
            closed = close_sent(session, datetime.now(UTC), [other.edition_id])
            session.rollback()
        return closed

    _read_lightly(db, close)
    assert close() == []


def test_on_sqlite_closing_asks_the_indexes_of_due_and_leased_rows(
    db: Database, settings: Settings
) -> None:
    """Not the edition's own rows, which an edition being sent is mostly made of."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's planner")
    made = sending(db, settings, readers=3)

    def close() -> None:
        with db.session() as session:
            close_sent(session, datetime.now(UTC), [made.edition_id])
            session.rollback()

    (plan,) = (sqlite_plan(db, sent) for sent in statements_of(db, close, "deliveries"))
    assert "ix_deliveries_due" in plan and "ix_deliveries_leased" in plan, plan
    assert "sqlite_autoindex_deliveries" not in plan, plan
