"""Real rows for the ledger's own tests: a newsletter, its readers, and an edition whose
deliveries the test fans out (or finds fanned out) itself."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from tests.builders import articles, newsletter, subscribers
from tidings.compose.oneoff import schedule_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryState, Edition, EditionStatus, Subscriber
from tidings.deliver import ledger

DOMAIN = "messenger.example.ge"


@dataclass(frozen=True)
class Readers:
    newsletter_id: int
    edition_id: int
    #: Subscriber id by address, in the order the readers were added.
    ids: dict[str, int]


def draft(db: Database, settings: Settings, readers: int, slug: str = "daily") -> Readers:
    """A newsletter with ``readers`` active subscribers and a draft edition, not fanned out."""
    newsletter_id = newsletter(db, slug)
    ids = articles(db, slug, 2, datetime.now(UTC) - timedelta(hours=3))
    addresses = subscribers(db, slug, readers)
    soon = datetime.now(UTC) + timedelta(hours=1)
    edition_id = schedule_one_off(db, settings, slug, OneOff(article_ids=ids), soon)
    with db.session() as session:
        found = dict(
            session.execute(
                select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(addresses))
            ).all()
        )
    return Readers(newsletter_id, edition_id, {a: found[a] for a in addresses})


def sending(db: Database, settings: Settings, readers: int, slug: str = "daily") -> Readers:
    """As :func:`draft`, then sending and fanned out: one queued delivery per reader."""
    made = draft(db, settings, readers, slug)
    now = datetime.now(UTC)
    with db.session() as session:
        session.execute(
            update(Edition)
            .where(Edition.id == made.edition_id)
            .values(status=EditionStatus.sending)
        )
        ledger.fan_out(session, made.edition_id, made.newsletter_id, DOMAIN, now)
        session.commit()
    return made


def states(db: Database, edition_id: int) -> dict[int, DeliveryState]:
    """Each delivery's state by subscriber id."""
    with db.session() as session:
        rows = session.execute(
            select(Delivery.subscriber_id, Delivery.state).where(Delivery.edition_id == edition_id)
        ).all()
    return {subscriber_id: state for subscriber_id, state in rows if subscriber_id is not None}
