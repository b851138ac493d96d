"""Erasure, by either path that deletes readers (one erase(), the console's bulk delete):
nothing naming an erased reader stays, the ledger keeps its anonymous rows, and everyone
else's records stay as they were."""

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, update

from tests.deliver.ledgerrows import DOMAIN, Readers, draft
from tidings.audience.bulk import bulk_delete
from tidings.audience.search import AudienceFilter
from tidings.audience.service import add_subscriber
from tidings.audience.subscribers import erase
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    BouncePoint,
    Delivery,
    DeliveryState,
    Edition,
    EditionStatus,
    InboundMeaning,
    InboundMessage,
)
from tidings.deliver import ledger

KEPT = "nino@example.ge"


def _audience(db: Database, settings: Settings) -> Readers:
    """reader0..2 and nino, each with a delivery quoting their address, two copies of a bounce
    about them (one kept to them, one kept only to their delivery) and a bounce point."""
    made = draft(db, settings, readers=3)
    nino = add_subscriber(db, "daily", KEPT, "Nino", True, "test")
    ids = {**made.ids, KEPT: nino.subscriber_id}
    with db.session() as session:
        session.execute(
            update(Edition)
            .where(Edition.id == made.edition_id)
            .values(status=EditionStatus.sending)
        )
        now = datetime.now(UTC)
        assert ledger.fan_out(session, made.edition_id, made.newsletter_id, DOMAIN, now) == 4
        deliveries = dict(session.execute(select(Delivery.subscriber_id, Delivery.id)).all())
        for address, subscriber_id in ids.items():
            session.execute(
                update(Delivery)
                .where(Delivery.id == deliveries[subscriber_id])
                .values(state=DeliveryState.sent, last_reply=f"250 Ok: queued for <{address}>")
            )
            for linked in ({"subscriber_id": subscriber_id}, {}):
                session.add(
                    InboundMessage(
                        channel="pipe",
                        recipient=f"bounce+{address}@{DOMAIN}",
                        raw=f"Final-Recipient: rfc822; {address}".encode(),
                        meaning=InboundMeaning.soft_bounce,
                        status="4.2.2",
                        diagnostic=f"452 <{address}>: mailbox full",
                        delivery_id=deliveries[subscriber_id],
                        recipient_domain="example.ge",
                        changes=f"a point on the bounce score of {address}",
                        **linked,
                    )
                )
            session.add(BouncePoint(email=address, day=date(2026, 12, 1), detail="452"))
        session.commit()
    return Readers(made.newsletter_id, made.edition_id, ids)


def _naming(db: Database, address: str) -> list[str]:
    """Every stored text naming ``address``, in deliveries, inbound copies, bounce points."""
    found: list[str] = []
    with db.session() as session:
        for (reply,) in session.execute(select(Delivery.last_reply)):
            found += [reply] if reply and address in reply else []
        for row in session.execute(
            select(
                InboundMessage.recipient,
                InboundMessage.raw,
                InboundMessage.diagnostic,
                InboundMessage.changes,
            )
        ):
            texts = [t.decode() if isinstance(t, bytes) else t for t in row if t is not None]
            found += [t for t in texts if address in t]
        found += list(
            session.scalars(select(BouncePoint.email).where(BouncePoint.email == address))
        )
    return found


def _erase_one(db: Database, made: Readers) -> set[str]:
    assert erase(db, made.ids["reader0@example.ge"]) is True
    return {"reader0@example.ge"}


def _bulk_one(db: Database, made: Readers) -> set[str]:
    assert bulk_delete(db, AudienceFilter(query="reader0@")) == 1
    return {"reader0@example.ge"}


def _bulk_three(db: Database, made: Readers) -> set[str]:
    assert bulk_delete(db, AudienceFilter(newsletter_id=made.newsletter_id, query="reader")) == 3
    return {"reader0@example.ge", "reader1@example.ge", "reader2@example.ge"}


@pytest.mark.parametrize("eraser", [_erase_one, _bulk_one, _bulk_three])
def test_erasing_by_any_path_leaves_nothing_naming_the_reader(
    db: Database, settings: Settings, eraser: Callable[[Database, Readers], set[str]]
) -> None:
    made = _audience(db, settings)
    # Each: a reply, 2 x (recipient, raw, diagnostic, changes), a bounce point.
    for address in made.ids:
        assert len(_naming(db, address)) == 10
    gone = eraser(db, made)
    for address in gone:
        assert _naming(db, address) == []
    for address in set(made.ids) - gone:
        assert len(_naming(db, address)) == 10
    with db.session() as session:
        ledger_rows = session.execute(select(Delivery.subscriber_id, Delivery.state)).all()
        inbound = session.execute(
            select(InboundMessage.meaning, InboundMessage.status, InboundMessage.recipient_domain)
        ).all()
    # The ledger and the sender-health counts stay whole: anonymous, not gone.
    assert sorted(state for _, state in ledger_rows) == [DeliveryState.sent] * 4
    assert sum(1 for subscriber_id, _ in ledger_rows if subscriber_id is None) == len(gone)
    assert inbound == [(InboundMeaning.soft_bounce, "4.2.2", "example.ge")] * 8


def test_erasing_nobody_changes_nothing(db: Database, settings: Settings) -> None:
    made = _audience(db, settings)
    assert erase(db, 10_000) is False
    assert bulk_delete(db, AudienceFilter(query="nobody")) == 0
    for address in made.ids:
        assert len(_naming(db, address)) == 10
