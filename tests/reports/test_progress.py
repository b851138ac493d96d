"""Edition progress shows what came back beside what was sent: bounced and complained, from
each delivery's feedback, counted live even once the edition's counts were stored; on
SQLite and PostgreSQL."""

from sqlalchemy import select, update

from tests.audience.people import audience, deliveries
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryFeedback, DeliveryState, Edition
from tidings.feedback.effects import mark_delivery
from tidings.reports.progress import edition_page, edition_progress, list_editions


def test_bounced_and_complained_are_shown_beside_sent(db: Database) -> None:
    people = audience(db)
    deliveries(db, people.weekly, people.ids["ana@example.ge"], ["one", "two"])
    with db.session() as session:
        first, second = session.scalars(select(Edition.id).order_by(Edition.id)).all()
        session.add(
            Delivery(
                edition_id=first,
                subscriber_id=people.ids["dato@example.ge"],
                state=DeliveryState.sent,
                message_id="<dato.1@example.ge>",
            )
        )
        session.flush()
        ids = session.scalars(
            select(Delivery.id).where(Delivery.edition_id == first).order_by(Delivery.id)
        ).all()
        mark_delivery(session, ids[0], DeliveryFeedback.bounced)
        mark_delivery(session, ids[1], DeliveryFeedback.complained)
        # The first edition is over: its counts per state were stored.
        session.execute(update(Edition).where(Edition.id == first).values(final_counts={"sent": 2}))
        session.commit()
    progress = edition_progress(db, first)
    assert (progress.counts, progress.bounced, progress.complained) == (
        {DeliveryState.sent: 2},
        1,
        1,
    )
    quiet = edition_progress(db, second)
    assert (quiet.counts[DeliveryState.sent], quiet.bounced, quiet.complained) == (1, 0, 0)
    listed = {p.edition_id: (p.bounced, p.complained) for p in list_editions(db, "weekly")}
    assert listed[first] == (1, 1) and listed[second] == (0, 0)
    paged = {p.edition_id: (p.bounced, p.complained) for p in edition_page(db, None, 0, 50).rows}
    assert paged == listed
