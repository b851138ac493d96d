"""The worker's database side, call by call, on real rows: a claim prepared into jobs (and
results known without sending), results written, leases renewed, upkeep."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from tests.deliver.ledgerrows import sending, states
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryState,
    Edition,
    EditionStatus,
    Subscription,
    SubscriptionStatus,
)
from tidings.deliver.worker_db import GONE_REPLY, WorkerDatabase


def test_a_claim_is_prepared_into_jobs_and_a_reader_gone_meanwhile_fails(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=4)
    left = list(made.ids.values())[1]
    with db.session() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.subscriber_id == left)
            .values(status=SubscriptionStatus.unsubscribed)
        )
        session.commit()
    store = WorkerDatabase(db, settings)
    first = store.claim("w:1", 2)
    second = store.claim("w:2", 10)
    assert first.token == "w:1" and second.token == "w:2"
    jobs = first.jobs + second.jobs
    gone = first.gone + second.gone
    assert {j.recipient.subscriber_id for j in jobs} == set(made.ids.values()) - {left}
    assert [(o.state, o.reply) for o in gone] == [(DeliveryState.failed, GONE_REPLY)]
    assert len(first.jobs + first.gone) == 2
    assert {o.lease_token for o in first.gone} | {j.claim.lease_token for j in first.jobs} == {
        "w:1"
    }
    assert len({id(j.mail) for j in jobs}) == 1  # the edition's mail is built once
    assert jobs[0].recipient.email in made.ids
    assert store.claim("w:3", 10).jobs == []


def test_results_are_written_and_leases_renewed_by_token(db: Database, settings: Settings) -> None:
    made = sending(db, settings, readers=2)
    store = WorkerDatabase(db, settings)
    prepared = store.claim("w:1", 2)
    now = datetime.now(UTC)
    renewal = store.renew(["w:1", "w:0"])
    assert renewal.held == {j.claim.delivery_id for j in prepared.jobs}
    with db.session() as session:
        expiry = session.scalars(select(Delivery.lease_expires_at)).first()
    assert expiry is not None and expiry >= now + timedelta(seconds=settings.lease_seconds)
    first, second = prepared.jobs
    recorded = store.write(
        [
            first.claim.outcome(DeliveryState.sent, 250, "ok", now),
            second.claim.outcome(DeliveryState.deferred, 451, "later", now, now),
        ],
        frozenset(),
    )
    assert (recorded.written, recorded.dropped) == (2, ())
    assert set(states(db, made.edition_id).values()) == {
        DeliveryState.sent,
        DeliveryState.deferred,
    }
    assert store.renew(["w:1"]).held == frozenset()


def test_upkeep_says_whether_work_is_due_and_closes_the_edition(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=1)
    store = WorkerDatabase(db, settings)
    assert store.upkeep()
    (job,) = store.claim("w:1", 1).jobs
    assert store.upkeep()  # held under a lease: not done yet
    store.write([job.claim.outcome(DeliveryState.sent, 250, "ok", datetime.now(UTC))], ())
    assert not store.upkeep()
    with db.session() as session:
        assert session.get_one(Edition, made.edition_id).status == EditionStatus.sent
