"""Hostile checks of section variants and the Message-ID that names nobody, on both
databases: what a complaint report quotes must still lead back to its delivery."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from tests.builders import articles, newsletter, subscribers
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, Subscriber
from tidings.inbound.targets import of_message_id


def test_a_message_id_of_the_earlier_form_still_leads_to_its_delivery(
    db: Database, settings: Settings
) -> None:
    """Mail sent before the upgrade carried ``<tidings.E.R.S@domain>``; its deliveries keep
    that Message-ID (a retry reuses it), and a complaint about it can come weeks later. The
    stored Message-ID is what is matched, so the earlier form must still be looked up."""
    newsletter(db)
    ids = articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=2))
    subscribers(db, "daily", 2)
    edition_id = send_one_off(db, settings, "daily", OneOff(article_ids=ids)).edition_id
    with db.session() as session:
        reader = session.scalars(
            select(Subscriber.id).where(Subscriber.email == "reader1@example.ge")
        ).one()
        earlier = f"<tidings.{edition_id}.5f3a9c.{reader}@example.ge>"
        session.execute(
            update(Delivery)
            .where(Delivery.edition_id == edition_id, Delivery.subscriber_id == reader)
            .values(message_id=earlier)
        )
        session.commit()
        target = of_message_id(session, earlier)
        assert target is not None and target.email == "reader1@example.ge"
        assert of_message_id(session, earlier.strip("<>")) is not None
        # Made up in the earlier form (not stored): still nobody.
        assert of_message_id(session, f"<tidings.{edition_id}.5f3a9d.{reader}@example.ge>") is None
