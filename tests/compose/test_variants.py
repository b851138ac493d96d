"""Readers get their sections only: the edition is rendered once per distinct choice of
sections among its readers (never per reader), capped by a setting, each delivery names its
variant, a second fan-out changes nothing, and the Message-ID names nobody yet still leads an
ARF complaint back to its delivery. On both databases, sent through a real SMTP server."""

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import select, update

from tests.builders import articles, newsletter, subscribers
from tests.smtpserver import smtp_server
from tidings.compose.lifecycle import start_due_drafts
from tidings.compose.oneoff import schedule_one_off, send_one_off
from tidings.compose.service import OneOff, compose_scheduled, fan_out_edition
from tidings.compose.variants import choice_key, plan_variants
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Article,
    Delivery,
    Edition,
    EditionArticle,
    EditionStatus,
    EditionVariant,
    Newsletter,
    Subscriber,
    Subscription,
)
from tidings.db.types import utcnow
from tidings.deliver.runner import run_worker
from tidings.inbound.targets import of_message_id

#: The edition's six articles, in order, by section.
SECTIONS = ["Politics", "Economy", "Culture", "Politics", "Economy", "Culture"]
#: Each reader's stored choice: (none), one section, two (in either order: one choice),
#: every section (the whole edition), and only a section the edition does not carry.
CHOICES: dict[str, list[str] | None] = {
    "reader0@example.ge": None,
    "reader1@example.ge": ["Culture"],
    "reader2@example.ge": ["Economy", "Politics"],
    "reader3@example.ge": ["Politics", "Economy", "Sport"],
    "reader4@example.ge": ["Culture", "Economy", "Politics"],
    "reader5@example.ge": ["Sport"],
}


def _readers_with_choices(db: Database) -> tuple[list[int], dict[str, int]]:
    """The newsletter, its six articles and six readers with their choices."""
    newsletter(db)
    ids = articles(db, "daily", len(SECTIONS), datetime.now(UTC) - timedelta(hours=3))
    subscribers(db, "daily", len(CHOICES))
    with db.session() as session:
        for article_id, section in zip(ids, SECTIONS, strict=True):
            session.execute(update(Article).where(Article.id == article_id).values(section=section))
        readers = dict(session.execute(select(Subscriber.email, Subscriber.id)).all())
        for address, chosen in CHOICES.items():
            session.execute(
                update(Subscription)
                .where(Subscription.subscriber_id == readers[address])
                .values(sections=chosen)
            )
        session.commit()
    return ids, readers


def _titles(db: Database, ids: list[int]) -> dict[str, str]:
    """Each article's title by its section's position: ``Politics#0`` and so on."""
    with db.session() as session:
        found = dict(session.execute(select(Article.id, Article.title)).all())
    return {
        f"{section}#{n}": found[i] for n, (i, section) in enumerate(zip(ids, SECTIONS, strict=True))
    }


def _deliveries(db: Database, edition_id: int) -> dict[int, Delivery]:
    with db.session() as session:
        rows = session.scalars(select(Delivery).where(Delivery.edition_id == edition_id))
        return {d.subscriber_id: d for d in rows if d.subscriber_id is not None}


def _variants(db: Database, edition_id: int) -> dict[int, EditionVariant]:
    with db.session() as session:
        rows = session.scalars(
            select(EditionVariant).where(EditionVariant.edition_id == edition_id)
        )
        return {v.id: v for v in rows}


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_a_reader_with_sections_gets_only_those_through_smtp(
    db: Database, settings: Settings
) -> None:
    ids, _ = _readers_with_choices(db)
    titles = _titles(db, ids)
    with smtp_server() as (smtp, port):
        live = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        result = send_one_off(db, live, "daily", OneOff(article_ids=ids))
        assert result.deliveries == 5  # reader5 chose only a section the edition lacks
        with ThreadPoolExecutor(1) as pool:  # a loop of its own, whatever else runs here
            pool.submit(
                lambda: asyncio.run(run_worker(db, live, drain=True, stop=asyncio.Event()))
            ).result(timeout=60)
        caught = {c.rcpt_tos[0]: c.message for c in smtp.caught}
    assert set(caught) == set(CHOICES) - {"reader5@example.ge"}
    wanted = {
        "reader0@example.ge": set(titles),
        "reader1@example.ge": {"Culture#2", "Culture#5"},
        "reader2@example.ge": {"Politics#0", "Economy#1", "Politics#3", "Economy#4"},
        "reader3@example.ge": {"Politics#0", "Economy#1", "Politics#3", "Economy#4"},
        "reader4@example.ge": set(titles),
    }
    subjects = set()
    for address, message in caught.items():
        text = _text(message)
        shown = {key for key, title in titles.items() if title in text}
        assert shown == wanted[address], address
        subjects.add(str(message["Subject"]))
        # The Message-ID is random per delivery: it does not carry the reader's id.
        message_id = str(message["Message-ID"])
        assert re.fullmatch(rf"<tidings\.{result.edition_id}\.[0-9a-f]{{32}}@[^>]+>", message_id)
    assert len(subjects) == 1  # every variant keeps the edition's subject
    with db.session() as session:
        status = session.scalar(select(Edition.status).where(Edition.id == result.edition_id))
    assert status == EditionStatus.sent


def test_one_render_per_distinct_choice_and_a_second_fan_out_changes_nothing(
    db: Database, settings: Settings
) -> None:
    ids, readers = _readers_with_choices(db)
    result = send_one_off(db, settings, "daily", OneOff(article_ids=ids))
    variants = _variants(db, result.edition_id)
    # Two choices leave something out: Culture alone; Economy with Politics (two readers,
    # who stored it differently). No choice and every section get the edition itself.
    assert {tuple(v.sections or []): v.article_count for v in variants.values()} == {
        ("Culture",): 2,
        ("Economy", "Politics"): 4,
    }
    by_choice = {tuple(v.sections or []): v.id for v in variants.values()}
    assert all(v.choice_key == choice_key(v.sections or []) for v in variants.values())
    found = _deliveries(db, result.edition_id)
    assert {
        address: found[readers[address]].variant_id
        for address in CHOICES
        if address != "reader5@example.ge"
    } == {
        "reader0@example.ge": None,
        "reader1@example.ge": by_choice[("Culture",)],
        "reader2@example.ge": by_choice[("Economy", "Politics")],
        "reader3@example.ge": by_choice[("Economy", "Politics")],
        "reader4@example.ge": None,
    }
    assert readers["reader5@example.ge"] not in found
    # Again (a retried start): no delivery, no variant, no Message-ID changes.
    with db.session() as session:
        edition = session.get_one(Edition, result.edition_id)
        newsletter_row = session.get_one(Newsletter, edition.newsletter_id)
        kept = list(
            session.scalars(
                select(Article)
                .join(EditionArticle, EditionArticle.article_id == Article.id)
                .where(EditionArticle.edition_id == edition.id)
                .order_by(EditionArticle.position)
            )
        )
        again = fan_out_edition(
            session,
            edition,
            newsletter_row,
            sorted(set(SECTIONS)),
            utcnow(),
            settings=settings,
            articles=kept,
        )
        session.commit()
    assert again == 0
    assert set(_variants(db, result.edition_id)) == set(variants)
    after = _deliveries(db, result.edition_id)
    assert {k: (d.message_id, d.variant_id) for k, d in after.items()} == {
        k: (d.message_id, d.variant_id) for k, d in found.items()
    }


def test_beyond_the_cap_the_rarest_choices_get_the_whole_edition(
    db: Database, settings: Settings
) -> None:
    ids, readers = _readers_with_choices(db)
    capped = settings.model_copy(update={"max_section_variants": 1})
    result = send_one_off(db, capped, "daily", OneOff(article_ids=ids))
    (variant,) = _variants(db, result.edition_id).values()
    assert variant.sections == ["Economy", "Politics"]  # chosen by two readers, Culture by one
    found = _deliveries(db, result.edition_id)
    assert found[readers["reader1@example.ge"]].variant_id is None
    assert found[readers["reader2@example.ge"]].variant_id == variant.id
    off = settings.model_copy(update={"max_section_variants": 0})
    second = send_one_off(db, off, "daily", OneOff(article_ids=ids))
    assert _variants(db, second.edition_id) == {}
    assert {d.variant_id for d in _deliveries(db, second.edition_id).values()} == {None}


def test_the_message_id_leads_back_to_its_delivery_and_nothing_else(
    db: Database, settings: Settings
) -> None:
    ids, readers = _readers_with_choices(db)
    result = send_one_off(db, settings, "daily", OneOff(article_ids=ids))
    delivery = _deliveries(db, result.edition_id)[readers["reader1@example.ge"]]
    everyone = list(readers.values())  # the lookup is by reader: any of them may be asked
    with db.session() as session:
        target = of_message_id(session, delivery.message_id, everyone)
        assert target is not None
        assert (target.delivery_id, target.email) == (delivery.id, "reader1@example.ge")
        assert of_message_id(session, delivery.message_id.strip("<>"), everyone) is not None
        local, domain = delivery.message_id.strip("<>").split("@")
        altered = local[:-1] + ("0" if local[-1] != "0" else "1")
        assert of_message_id(session, f"<{altered}@{domain}>", everyone) is None
        other_edition = local.replace(f".{result.edition_id}.", f".{result.edition_id + 1}.")
        assert of_message_id(session, f"<{other_edition}@{domain}>", everyone) is None
        subscriber = readers["reader1@example.ge"]
        old_form = f"<tidings.{result.edition_id}.0badcafe.{subscriber}@{domain}>"
        assert of_message_id(session, old_form, everyone) is None


def test_the_plan_groups_choices_by_what_they_mean_for_the_edition() -> None:
    carried = ["Culture", "Economy", "Politics"]
    plan = plan_variants(
        [
            (None, 7),
            ("[]", 3),
            ('["Culture"]', 1),
            ('["Politics","Economy"]', 2),
            ('["Economy", "Politics", "Sport"]', 2),
            ('["Culture","Economy","Politics"]', 5),
            ('["Sport"]', 4),
            ("not json", 1),
            ('{"Culture": true}', 1),
        ],
        carried,
        cap=5,
    )
    assert [(c.sections, c.readers) for c in plan] == [
        (("Economy", "Politics"), 4),
        (("Culture",), 1),
    ]
    assert plan_variants([('["Culture"]', 1)], carried, cap=0) == []
    assert choice_key(["b", "a"]) == choice_key(["a", "b", "a"]) != choice_key(["a"])


def test_a_scheduled_one_off_gets_its_variants_when_it_starts(
    db: Database, settings: Settings
) -> None:
    ids, readers = _readers_with_choices(db)
    send_at = utcnow() + timedelta(hours=1)
    edition_id = schedule_one_off(db, settings, "daily", OneOff(article_ids=ids), send_at)
    assert _variants(db, edition_id) == {}  # readers are chosen when it starts
    assert start_due_drafts(db, settings, send_at) == [edition_id]
    variants = {tuple(v.sections or []): v.id for v in _variants(db, edition_id).values()}
    assert set(variants) == {("Culture",), ("Economy", "Politics")}
    found = _deliveries(db, edition_id)
    assert found[readers["reader1@example.ge"]].variant_id == variants[("Culture",)]
    assert found[readers["reader0@example.ge"]].variant_id is None


def test_a_scheduled_edition_gets_its_variants_with_its_own_subject(
    db: Database, settings: Settings
) -> None:
    _, readers = _readers_with_choices(db)
    with db.session() as session:
        newsletter_id = session.scalar(select(Newsletter.id).where(Newsletter.slug == "daily"))
    assert newsletter_id is not None
    result = compose_scheduled(db, settings, newsletter_id, utcnow().replace(microsecond=0))
    assert (result.created, result.articles, result.deliveries) == (True, 6, 5)
    variants = _variants(db, result.edition_id)
    assert sorted(v.article_count for v in variants.values()) == [2, 4]
    found = _deliveries(db, result.edition_id)
    assert found[readers["reader3@example.ge"]].variant_id is not None
    assert found[readers["reader4@example.ge"]].variant_id is None
    with db.session() as session:
        edition = session.get_one(Edition, result.edition_id)
        culture = next(v for v in variants.values() if v.sections == ["Culture"])
        # The variant's parts are the edition's layout with fewer stories, not another mail.
        assert (
            edition.subject
            and edition.html_body
            and len(culture.html_body) < len(edition.html_body)
        )
