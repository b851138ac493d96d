"""Claims: due deliveries of sending editions leased under a token, renewed by that token
only, and the readers a claim may still go to."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from tests.deliver.ledgerrows import sending
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    DeliveryState,
    Edition,
    EditionStatus,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from tidings.deliver import ledger
from tidings.mail.status import BounceKind

LEASE = timedelta(seconds=30)


def test_a_claim_leases_due_deliveries_up_to_the_limit(db: Database, settings: Settings) -> None:
    made = sending(db, settings, readers=5)
    now = datetime.now(UTC)
    with db.session() as session:  # one is not due yet
        later = next(iter(made.ids.values()))
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == later)
            .values(state=DeliveryState.deferred, next_attempt_at=now + timedelta(minutes=5))
        )
        session.commit()
    with db.session() as session:
        first = ledger.claim_due(session, "w:1", 3, LEASE, now)
        second = ledger.claim_due(session, "w:2", 3, LEASE, now)
        third = ledger.claim_due(session, "w:3", 3, LEASE, now)
        session.commit()
    assert (len(first), len(second), third) == (3, 1, [])
    assert [c.delivery_id for c in first] == sorted(c.delivery_id for c in first)
    assert later not in {c.subscriber_id for c in first + second}
    claim = first[0]
    assert (claim.edition_id, claim.attempts, claim.lease_token) == (made.edition_id, 1, "w:1")
    with db.session() as session:
        row = session.get_one(Delivery, claim.delivery_id)
        assert (row.state, row.lease_owner) == (DeliveryState.sending, "w:1")
        assert row.lease_expires_at == now + LEASE and row.last_attempt_at == now


def test_deliveries_of_an_edition_not_sending_are_not_claimed(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=2)
    with db.session() as session:
        session.execute(
            update(Edition).where(Edition.id == made.edition_id).values(status=EditionStatus.paused)
        )
        session.commit()
    with db.session() as session:
        assert ledger.claim_due(session, "w:1", 10, LEASE, datetime.now(UTC)) == []


def test_a_claims_outcome_carries_its_token_and_its_bounce(
    db: Database, settings: Settings
) -> None:
    sending(db, settings, readers=1)
    now = datetime.now(UTC)
    with db.session() as session:
        (claim,) = ledger.claim_due(session, "w:1", 1, LEASE, now)
        session.commit()
    failed = claim.outcome(DeliveryState.failed, 550, "550 5.1.1 gone", now, bounce=BounceKind.hard)
    assert (failed.delivery_id, failed.lease_token) == (claim.delivery_id, "w:1")
    assert failed.bounce == BounceKind.hard
    retry = now + timedelta(minutes=5)
    deferred = claim.outcome(DeliveryState.deferred, 451, "451 later", now, retry)
    assert (deferred.next_attempt_at, deferred.bounce) == (retry, None)


def test_renewal_extends_only_the_tokens_own_leases_and_names_stopped_editions(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=3)
    now = datetime.now(UTC)
    with db.session() as session:
        mine = ledger.claim_due(session, "w:1", 2, LEASE, now)
        theirs = ledger.claim_due(session, "v:1", 1, LEASE, now)
        session.commit()
    later = now + timedelta(seconds=20)
    with db.session() as session:
        renewal = ledger.renew_leases(session, ["w:1"], LEASE, later)
        session.commit()
    assert renewal.held == {c.delivery_id for c in mine}
    assert renewal.stopped == {}
    with db.session() as session:
        expiries = dict(session.execute(select(Delivery.id, Delivery.lease_expires_at)).all())
        session.execute(
            update(Edition)
            .where(Edition.id == made.edition_id)
            .values(status=EditionStatus.cancelled)
        )
        session.commit()
    assert {expiries[c.delivery_id] for c in mine} == {later + LEASE}
    assert expiries[theirs[0].delivery_id] == now + LEASE
    with db.session() as session:
        renewal = ledger.renew_leases(session, ["w:1"], LEASE, later)
        assert ledger.renew_leases(session, [], LEASE, later).held == frozenset()
        session.commit()
    assert renewal.stopped == {made.edition_id: EditionStatus.cancelled}


def test_recipients_are_the_readers_still_active_and_unsuppressed(
    db: Database, settings: Settings
) -> None:
    made = sending(db, settings, readers=3)
    left, suppressed, kept = made.ids
    with db.session() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.subscriber_id == made.ids[left])
            .values(status=SubscriptionStatus.unsubscribed)
        )
        session.add(Suppression(email=suppressed, reason=SuppressionReason.complaint))
        session.commit()
    with db.session() as session:
        found = ledger.recipients(session, made.newsletter_id, list(made.ids.values()))
    assert list(found) == [made.ids[kept]]
    recipient = found[made.ids[kept]]
    assert (recipient.email, recipient.name) == (kept, "Reader 2")
    with db.session() as session:
        subscription_id = session.scalar(
            select(Subscription.id).where(Subscription.subscriber_id == made.ids[kept])
        )
    assert recipient.subscription_id == subscription_id
