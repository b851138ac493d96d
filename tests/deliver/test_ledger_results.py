"""Results: written in one batch, each only while its lease holds; a bounce done to its
reader (hard: suppressed, soft: a point, policy: nothing), with the reply in the reader's
history; what refusals do waits while an edition's first results are watched for a mass
refusal."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.deliver.ledgerrows import sending
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    BouncePoint,
    Delivery,
    DeliveryState,
    HistoryKind,
    SubscriberEvent,
    Suppression,
    SuppressionReason,
)
from tidings.deliver import ledger
from tidings.feedback.effects import BounceScore
from tidings.feedback.history import ARRIVAL
from tidings.mail.status import BounceKind

LEASE = timedelta(seconds=30)
SCORE = BounceScore(threshold=5, window_days=14)


def _claim(db: Database, token: str, limit: int, now: datetime) -> list[ledger.Claim]:
    with db.session() as session:
        claims = ledger.claim_due(session, token, limit, LEASE, now)
        session.commit()
    return claims


def _record(
    db: Database,
    outcomes: list[ledger.Outcome],
    judged: frozenset[int] = frozenset(),
    score: BounceScore = SCORE,
) -> ledger.Recorded:
    with db.session() as session:
        recorded = ledger.record_outcomes(session, outcomes, judged, score)
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
    reply = "550 5.1.1 no such user"
    outcomes = [first.outcome(DeliveryState.failed, 550, reply, now, None, BounceKind.hard)]
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


def _reader_changes(db: Database) -> tuple[list[tuple[str, SuppressionReason]], list[str]]:
    """(suppressed address and reason, addresses with a bounce point)."""
    with db.session() as session:
        suppressed = session.execute(
            select(Suppression.email, Suppression.reason).order_by(Suppression.email)
        ).all()
        points = session.scalars(select(BouncePoint.email).order_by(BouncePoint.email)).all()
    return [(e, r) for e, r in suppressed], list(points)


def test_each_bounce_of_a_judged_edition_is_done_to_its_reader(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=4)
    gone, full, blocked, fine = list(made.ids)
    now = datetime.now(UTC)
    claims = {c.subscriber_id: c for c in _claim(db, "w:1", 4, now)}
    replies = {
        gone: (550, "550 5.1.1 no such user", BounceKind.hard),
        full: (552, "552 5.2.2 mailbox full", BounceKind.soft),
        blocked: (554, "554 5.7.1 refused by policy", BounceKind.policy),
    }
    outcomes = [
        claims[made.ids[email]].outcome(DeliveryState.failed, code, reply, now, None, kind)
        for email, (code, reply, kind) in replies.items()
    ]
    outcomes.append(claims[made.ids[fine]].outcome(DeliveryState.sent, 250, "ok", now))
    _record(db, outcomes, frozenset({made.edition_id}))
    assert _reader_changes(db) == ([(gone, SuppressionReason.hard_bounce)], [full])
    with db.session() as session:
        events = session.execute(
            select(
                SubscriberEvent.subscriber_id, SubscriberEvent.kind, SubscriberEvent.detail
            ).where(SubscriberEvent.kind.not_in(ARRIVAL))  # not how the readers came
        ).all()
        blocked_row = session.scalars(
            select(Delivery).where(Delivery.subscriber_id == made.ids[blocked])
        ).one()
    assert sorted((s, k) for s, k, _ in events) == sorted(
        [(made.ids[gone], HistoryKind.suppressed), (made.ids[full], HistoryKind.bounce_point)]
    )
    details = {s: d for s, _, d in events}
    edition = f"(while sending edition {made.edition_id})"
    assert details[made.ids[gone]] == f"hard_bounce: 550 5.1.1 no such user {edition}"
    assert details[made.ids[full]] == f"552 5.2.2 mailbox full {edition}"
    # The policy refusal stays on the delivery, for the sender's health: nothing else.
    assert (blocked_row.last_reply_code, blocked_row.last_reply) == (
        554,
        "554 5.7.1 refused by policy",
    )


def test_giving_up_on_4xx_scores_a_point_at_once_even_while_watched(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=2)
    now = datetime.now(UTC)
    first, second = _claim(db, "w:1", 2, now)
    reply = "gave up after 30 attempts: 452 4.2.2 over quota"
    _record(
        db,
        [
            first.outcome(DeliveryState.failed, 452, reply, now, None, BounceKind.soft),
            second.outcome(DeliveryState.sent, 250, "ok", now),
        ],
    )
    address = next(e for e, i in made.ids.items() if i == first.subscriber_id)
    assert _reader_changes(db) == ([], [address])


def test_a_soft_refusal_reaching_the_threshold_suppresses(db: Database, settings: Settings) -> None:
    made = sending(db, settings, readers=1)
    now = datetime.now(UTC)
    (claim,) = _claim(db, "w:1", 1, now)
    reply = "552 5.2.2 mailbox full"
    outcome = claim.outcome(DeliveryState.failed, 552, reply, now, None, BounceKind.soft)
    _record(db, [outcome], frozenset({made.edition_id}), BounceScore(threshold=1, window_days=1))
    (address,) = made.ids
    assert _reader_changes(db) == ([(address, SuppressionReason.soft_bounce)], [address])
