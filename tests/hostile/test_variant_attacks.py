"""Hostile checks of section variants and the Message-ID that names nobody, on both
databases: what a complaint report quotes must still lead back to its delivery."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from tests.builders import articles, newsletter, subscribers
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Article,
    Delivery,
    EditionVariant,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tidings.deliver import worker_db
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
        target = of_message_id(session, earlier, [reader])
        assert target is not None and target.email == "reader1@example.ge"
        assert of_message_id(session, earlier.strip("<>"), [reader]) is not None
        # Made up in the earlier form (not stored): still nobody.
        made_up = f"<tidings.{edition_id}.5f3a9d.{reader}@example.ge>"
        assert of_message_id(session, made_up, [reader]) is None


#: The edition's sections, named so that code-point order ("Politics", "Zeta", "culture",
#: "Économie") differs from a language's collation (culture, Économie, Politics, Zeta), with
#: a section named like a number.
EDITION_SECTIONS = ["Politics", "culture", "Économie", "Zeta", "1"]

#: Odd stored choices, and the sections of the variant each reader must get: None for the
#: whole edition, () for no mail at all.
ODD_CHOICES: list[tuple[object, tuple[str, ...] | None]] = [
    (None, None),
    ([], None),
    ({"Politics": True}, None),  # not a list: no choice
    ("Politics", None),
    (7, None),
    (["culture", "Politics"], ("Politics", "culture")),
    (["Politics", "culture"], ("Politics", "culture")),  # the same choice, the other order
    (["Politics", "culture", "Politics", "culture"], ("Politics", "culture")),  # duplicates
    (["Politics", 1, None, ["culture"], {"x": "Zeta"}], ("Politics",)),  # non-strings
    (["politics", "CULTURE"], ()),  # case matters, as everywhere else: none of its sections
    ([1], ()),  # a number is not the section "1"
    (["1"], ("1",)),
    (["Gone", "Économie"], ("Économie",)),  # a section no article has
    (["Zeta", "Économie", "culture"], ("Zeta", "culture", "Économie")),
    ([f"old-{n}" for n in range(3000)] + ["Zeta"], ("Zeta",)),  # a huge list
    (EDITION_SECTIONS[::-1], None),  # every section: the whole edition
]


def _edition_with_sections(db: Database) -> tuple[int, list[int]]:
    """A newsletter with one article in each of EDITION_SECTIONS and one with none."""
    newsletter_id = newsletter(db)
    ids = articles(db, "daily", len(EDITION_SECTIONS) + 1, datetime.now(UTC) - timedelta(hours=3))
    with db.session() as session:
        for article_id, section in zip(ids, [*EDITION_SECTIONS, None], strict=True):
            session.execute(update(Article).where(Article.id == article_id).values(section=section))
        session.commit()
    return newsletter_id, ids


def _readers(db: Database, newsletter_id: int, choices: list[object]) -> list[int]:
    """One active reader per choice, stored as given (in bulk): their subscriber ids."""
    now = datetime.now(UTC)
    with db.session() as session:
        session.execute(
            insert(Subscriber),
            [{"email": f"odd{n}@example.ge", "created_at": now} for n in range(len(choices))],
        )
        ids = list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))
        session.execute(
            insert(Subscription),
            [
                {
                    "subscriber_id": subscriber_id,
                    "newsletter_id": newsletter_id,
                    "status": SubscriptionStatus.active,
                    "sections": chosen,
                    "created_at": now,
                }
                for subscriber_id, chosen in zip(ids, choices, strict=True)
            ],
        )
        session.commit()
    return ids


def _got(db: Database, edition_id: int) -> dict[int, tuple[str, ...] | None]:
    """Each reader's delivery of the edition: its variant's sections (None: the edition)."""
    with db.session() as session:
        rows = session.execute(
            select(Delivery.subscriber_id, EditionVariant.sections)
            .outerjoin(EditionVariant, EditionVariant.id == Delivery.variant_id)
            .where(Delivery.edition_id == edition_id)
        ).all()
    return {reader: None if chosen is None else tuple(chosen) for reader, chosen in rows}


def test_odd_section_choices_get_what_they_mean_on_both_databases(
    db: Database, settings: Settings
) -> None:
    """Choices stored in any order, with duplicates, non-strings, a section no article has,
    mixed case, a huge list, or not a list at all: each reader gets the variant of the
    edition's sections they chose (in the sections' order of code points on every database),
    the whole edition, or nothing, as the plan meant; never a wrong variant."""
    newsletter_id, ids = _edition_with_sections(db)
    readers = _readers(db, newsletter_id, [chosen for chosen, _ in ODD_CHOICES])
    edition_id = send_one_off(db, settings, "daily", OneOff(article_ids=ids)).edition_id
    got = _got(db, edition_id)
    for reader, (chosen, expected) in zip(readers, ODD_CHOICES, strict=True):
        if expected == ():
            assert reader not in got, chosen
        else:
            assert reader in got, chosen
            want = None if expected is None else tuple(sorted(expected))
            assert got[reader] == want, (str(chosen)[:80], got[reader])


def test_many_ways_of_storing_one_choice_fan_out_in_one_statement(
    db: Database, settings: Settings
) -> None:
    """33,000 readers who each stored their choice differently (the section they want and
    one that is gone): they all mean one variant. Matching them by their stored text put two
    parameters per text into the fan-out, past PostgreSQL's 65,535 (the edition failed for
    everyone), and made SQLite compare every reader with every text."""
    newsletter_id, ids = _edition_with_sections(db)
    many = 33_000
    _readers(db, newsletter_id, [["Politics", f"gone-{n}"] for n in range(many)])
    edition_id = send_one_off(db, settings, "daily", OneOff(article_ids=ids)).edition_id
    got = _got(db, edition_id)
    assert len(got) == many
    assert set(got.values()) == {("Politics",)}


def test_a_long_running_worker_keeps_a_bounded_number_of_mail_makers(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker keeps each (edition, variant)'s mail maker to send its readers; a reader-time
    newsletter with variants makes dozens a day, so what a worker keeps must be bounded
    (least recently used dropped first), and a dropped one is built again when needed."""
    newsletter_id, ids = _edition_with_sections(db)
    choices = [["Politics"], ["culture"], ["Zeta"], None]  # three variants and the edition
    _readers(db, newsletter_id, choices)
    send_one_off(db, settings, "daily", OneOff(article_ids=ids))
    worker = worker_db.WorkerDatabase(db, settings)
    worker.mails_kept = 2
    prepared = worker.claim("attack", 100)
    assert len(prepared.jobs) == len(choices)
    assert len(worker._mails) == 2
    with db.session() as session:
        variants = dict(session.execute(select(EditionVariant.id, EditionVariant.html_body)).all())
    for job in prepared.jobs:  # each reader's mail maker is their variant's, kept or not
        if job.claim.variant_id is not None:
            assert job.mail._stored_html == variants[job.claim.variant_id]
