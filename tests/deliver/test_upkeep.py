"""The ledger upkeep service, as workers and the scheduler run it: expired leases taken
back, finished editions closed, each step on its own; the database being away is raised."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy.exc import OperationalError

from tests.deliver.ledgerrows import sending, states
from tests.smtpserver import free_port
from tidings.config import Settings
from tidings.db.engine import Database, make_session_factory
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus
from tidings.deliver.ledger.results import DEFAULT_SCORE
from tidings.deliver.upkeep import FINISH, Upkeep, has_due_work, run_upkeep


def _expire_one_and_send_the_rest(db: Database, made_ids: list[int]) -> None:
    now = datetime.now(UTC)
    expired, *rest = made_ids
    with db.session() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == expired)
            .values(
                state=DeliveryState.sending,
                lease_owner="a-worker-that-died:1",
                lease_expires_at=now - timedelta(minutes=1),
            )
        )
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id.in_(rest))
            .values(state=DeliveryState.sent, sent_at=now)
        )
        session.commit()


def test_upkeep_takes_back_expired_leases_then_finishes_editions(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=3)
    ids = list(made.ids.values())
    _expire_one_and_send_the_rest(db, ids)
    assert has_due_work(db)  # still held, though by a dead worker
    assert run_upkeep(db, at_most_once=True, score=DEFAULT_SCORE) == Upkeep(reclaimed=1, finished=1)
    assert states(db, made.edition_id)[ids[0]] == DeliveryState.uncertain
    with db.session() as session:
        edition = session.get_one(Edition, made.edition_id)
    assert edition.status == EditionStatus.sent
    assert edition.final_counts == {"sent": 2, "uncertain": 1}
    assert not has_due_work(db)
    assert run_upkeep(db, at_most_once=True, score=DEFAULT_SCORE) == Upkeep()


def test_a_step_failing_for_its_data_stops_not_the_other(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing editions fails (a trigger refuses it, as a bad row would): the reclaim is
    kept, the failure is logged and named, and the next upkeep tries again."""
    made = sending(db, settings, readers=2)
    ids = list(made.ids.values())
    _expire_one_and_send_the_rest(db, ids)
    postgres = db.engine.dialect.name == "postgresql"
    with db.engine.begin() as connection:
        if postgres:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_finish BEFORE UPDATE ON editions FOR EACH ROW "
                    "WHEN (NEW.status = 'sent') EXECUTE FUNCTION refuse()"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_finish BEFORE UPDATE ON editions "
                    "WHEN NEW.status = 'sent' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
    try:
        with caplog.at_level(logging.ERROR):
            upkeep = run_upkeep(db, at_most_once=True, score=DEFAULT_SCORE)
        assert upkeep == Upkeep(reclaimed=1, finished=0, failed=(FINISH,))
        assert states(db, made.edition_id)[ids[0]] == DeliveryState.uncertain  # reclaimed
        assert [r.getMessage() for r in caplog.records] == [
            "upkeep step 'finish editions' failed; the other steps went on"
        ]
    finally:
        with db.engine.begin() as connection:
            connection.execute(
                text("DROP TRIGGER refuse_finish" + (" ON editions" if postgres else ""))
            )
            if postgres:
                connection.execute(text("DROP FUNCTION refuse()"))
    assert run_upkeep(db, at_most_once=True, score=DEFAULT_SCORE) == Upkeep(finished=1)


def test_the_database_being_away_is_raised_not_logged_as_a_step() -> None:
    url = f"postgresql+psycopg://tidings@127.0.0.1:{free_port()}/tidings"
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    away = Database(engine=engine, sessions=make_session_factory(engine))
    try:
        with pytest.raises(OperationalError):
            run_upkeep(away, at_most_once=False, score=DEFAULT_SCORE)
        with pytest.raises(OperationalError):
            has_due_work(away)
    finally:
        engine.dispose()
