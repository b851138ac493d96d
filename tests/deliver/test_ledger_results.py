"""Results: written in one batch, each only while its lease holds; 5.1.x suppressions wait
while an edition's first results are watched for a mass refusal."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.deliver.ledgerrows import sending
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Suppression
from tidings.deliver import ledger

LEASE = timedelta(seconds=30)


def _claim(db: Database, token: str, limit: int, now: datetime) -> list[ledger.Claim]:
    with db.session() as session:
        claims = ledger.claim_due(session, token, limit, LEASE, now)
        session.commit()
    return claims


def _record(
    db: Database, outcomes: list[ledger.Outcome], judged: frozenset[int] = frozenset()
) -> ledger.Recorded:
    with db.session() as session:
        recorded = ledger.record_outcomes(session, outcomes, judged)
        session.commit()
    return recorded


def test_each_result_is_written_with_its_reply_and_the_lease_let_go(
    db: Database, settings: Settings
) -> None:
    sending(db, settings, readers=3)
    now = datetime.now(UTC)
    sent, deferred, failed = _claim(db, "w:1", 3, now)
    with db.session() as session:
        queued_at = session.get_one(Delivery, failed.delivery_id).next_attempt_at
    retry = now + timedelta(minutes=5)
    recorded = _record(
        db,
        [
            sent.outcome(DeliveryState.sent, 250, "2.0.0 queued", now),
            deferred.outcome(DeliveryState.deferred, 451, "451 later", now, retry),
            failed.outcome(DeliveryState.failed, 554, "554 " + "x" * 2000, now),
        ],
    )
    assert (recorded.written, recorded.dropped, recorded.paused) == (3, (), {})
    with db.session() as session:
        rows = {d.id: d for d in session.scalars(select(Delivery))}
    row = rows[sent.delivery_id]
    assert (row.state, row.last_reply_code, row.sent_at) == (DeliveryState.sent, 250, now)
    assert (row.lease_owner, row.lease_expires_at) == (None, None)
    row = rows[deferred.delivery_id]
    assert (row.state, row.next_attempt_at, row.sent_at) == (DeliveryState.deferred, retry, None)
    row = rows[failed.delivery_id]
    assert row.state == DeliveryState.failed and len(row.last_reply or "") == 1000
    assert row.next_attempt_at == queued_at  # unchanged when the outcome names none


def test_an_empty_batch_writes_nothing() -> None:
    assert ledger.record_outcomes(None, []) == ledger.Recorded(0)  # type: ignore[arg-type]


def test_a_result_under_a_lost_lease_is_dropped(db: Database, settings: Settings) -> None:
    sending(db, settings, readers=2)
    now = datetime.now(UTC)
    kept, lost = _claim(db, "w:1", 2, now)
    stale = lost.outcome(DeliveryState.sent, 250, "ok", now)
    stale = ledger.Outcome(**{**stale.__dict__, "lease_token": "w:0"})  # an earlier holder's
    recorded = _record(db, [kept.outcome(DeliveryState.sent, 250, "ok", now), stale])
    assert (recorded.written, recorded.dropped) == (1, (lost.delivery_id,))
    with db.session() as session:
        row = session.get_one(Delivery, lost.delivery_id)
    assert (row.state, row.lease_owner) == (DeliveryState.sending, "w:1")


def _refuse_first(db: Database, judged: frozenset[int]) -> tuple[int, ledger.Recorded]:
    now = datetime.now(UTC)
    first, *rest = _claim(db, "w:1", 10, now)
    outcomes = [first.outcome(DeliveryState.failed, 550, "550 5.1.1 no such user", now, None, True)]
    outcomes += [c.outcome(DeliveryState.sent, 250, "ok", now) for c in rest]
    return first.edition_id, _record(db, outcomes, judged)


def test_a_5_1_x_refusal_waits_while_the_edition_is_watched(
    db: Database, settings: Settings
) -> None:
    sending(db, settings, readers=3)
    _edition_id, recorded = _refuse_first(db, frozenset())
    assert (recorded.written, recorded.paused, recorded.judged) == (3, {}, frozenset())
    with db.session() as session:
        assert session.scalars(select(Suppression)).all() == []


def test_a_5_1_x_refusal_of_a_judged_edition_suppresses_the_address(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=3)
    _edition_id, recorded = _refuse_first(db, frozenset({made.edition_id}))
    assert recorded.written == 3
    with db.session() as session:
        (suppression,) = session.scalars(select(Suppression)).all()
    assert suppression.email == next(iter(made.ids))
