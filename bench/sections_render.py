"""What readers' choices of sections cost: renders per edition and the cost per reader, with
section variants and with the whole edition for everyone (the baseline), in the same run and
database (PostgreSQL), the median of several rounds of each.

    .venv/bin/python bench/sections_render.py [--readers 20000] [--rounds 3]

An edition of 20 articles in 6 sections; half the readers chose no section, the others a
random choice of them (seeded). Per reader: the compose + fan-out transaction's time (the
variants are rendered in it) and the bytes of the message they get. Then the two ways to set
the deliveries' variant: a CASE in the fan-out's one INSERT ... SELECT (what Tidings does)
against the plain INSERT followed by one UPDATE per variant.
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import ROOT, fresh_database
from sqlalchemy import func, select, text, update

sys.path.insert(0, str(ROOT))
from tests.builders import articles
from tidings.audience.imports.importer import import_subscribers
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff, section_variants
from tidings.config import Settings, load_settings
from tidings.db.engine import Database, open_database
from tidings.db.migrate import upgrade
from tidings.db.models import (
    Article,
    Delivery,
    Edition,
    EditionKind,
    EditionStatus,
    EditionVariant,
    Newsletter,
    Subscriber,
    Subscription,
)
from tidings.db.types import utcnow
from tidings.deliver.ledger.fanout import fan_out, met_key, met_text, readers_of
from tidings.mail.edition import edition_mail

SECTIONS = ["Politics", "Diplomacy", "Economy", "Culture", "Sport", "Opinion"]
ARTICLES = 20


def _setup(db: Database, folder: str, readers: int) -> list[int]:
    """The newsletter, its 20 articles in 6 sections, and ``readers`` with their choices."""
    create_newsletter(db, NewsletterSpec(slug="bench", name="Bench", sender="b@example.org"))
    people = Path(folder) / "people.csv"
    people.write_text(
        "email,name\n" + "".join(f"r{i}@example.ge,Reader {i}\n" for i in range(readers))
    )
    import_subscribers(db, "bench", people, confirmed=True, batch_size=100_000)
    ids = articles(db, "bench", ARTICLES, utcnow())
    rng = random.Random(12)
    with db.session() as session:
        for n, article_id in enumerate(ids):
            session.execute(
                update(Article).where(Article.id == article_id).values(section=SECTIONS[n % 6])
            )
        subscription_ids = session.scalars(select(Subscription.id).order_by(Subscription.id))
        choices = []
        for subscription_id in subscription_ids:
            chosen = [s for s in SECTIONS if rng.random() < 0.35] if rng.random() < 0.5 else []
            choices.append({"id": subscription_id, "sections": json.dumps(chosen or None)})
        session.connection().execute(
            text("UPDATE subscriptions SET sections = CAST(:sections AS jsonb) WHERE id = :id"),
            choices,
        )
        session.commit()
    with db.engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    return ids


def _message_bytes(db: Database, settings: Settings, edition_id: int) -> float:
    """The mean size of the messages of an edition, as the worker makes them."""
    with db.session() as session:
        edition = session.get_one(Edition, edition_id)
        newsletter = session.get_one(Newsletter, edition.newsletter_id)
        makers: dict[int | None, Any] = {None: edition_mail(settings, edition, newsletter)}
        for variant in session.scalars(
            select(EditionVariant).where(EditionVariant.edition_id == edition_id)
        ):
            parts = (variant.html_body, variant.text_body)
            makers[variant.id] = edition_mail(settings, edition, newsletter, parts=parts)
        rows = session.execute(
            select(
                Delivery.variant_id,
                Delivery.message_id,
                Subscription.id,
                Subscriber.email,
                Subscriber.name,
            )
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .join(Subscription, Subscription.subscriber_id == Subscriber.id)
            .where(Delivery.edition_id == edition_id)
        ).all()
    sizes = [
        len(makers[variant].message_for(subscription, email, name, message_id))
        for variant, message_id, subscription, email, name in rows
    ]
    return statistics.fmean(sizes)


def _round(db: Database, settings: Settings, ids: list[int]) -> tuple[float, int, float, int]:
    """One edition sent: (compose + fan-out seconds, renders, mean message bytes, deliveries)."""
    started = time.perf_counter()
    result = send_one_off(db, settings, "bench", OneOff(article_ids=ids))
    elapsed = time.perf_counter() - started
    with db.session() as session:
        variants = session.scalar(
            select(func.count()).where(EditionVariant.edition_id == result.edition_id)
        )
        session.execute(
            update(Edition).where(Edition.id == result.edition_id).values(status="cancelled")
        )
        session.commit()
    size = _message_bytes(db, settings, result.edition_id)
    return elapsed, 1 + int(variants or 0), size, result.deliveries


def _bare_edition(db: Database, newsletter_id: int) -> int:
    with db.session() as session:
        edition = Edition(
            newsletter_id=newsletter_id,
            kind=EditionKind.oneoff,
            status=EditionStatus.cancelled,
            subject="s",
            html_body="h",
            text_body="t",
        )
        session.add(edition)
        session.commit()
        return edition.id


def _edition_with(
    db: Database, newsletter_id: int, source_id: int, variants: dict[int, frozenset[str]]
) -> tuple[int, dict[int, frozenset[str]]]:
    """A new bare edition with copies of edition ``source_id``'s ``variants`` (a fan-out may
    name only its own edition's variants): its id, and the copies' ids with their sections."""
    edition_id = _bare_edition(db, newsletter_id)
    copies: dict[int, frozenset[str]] = {}
    with db.session() as session:
        for original in session.scalars(
            select(EditionVariant).where(EditionVariant.edition_id == source_id)
        ):
            copy = EditionVariant(
                edition_id=edition_id,
                choice_key=original.choice_key,
                sections=original.sections,
                html_body=original.html_body,
                text_body=original.text_body,
                article_count=original.article_count,
            )
            session.add(copy)
            session.flush()
            copies[copy.id] = variants[original.id]
        session.commit()
    return edition_id, copies


def _assignment(db: Database, settings: Settings, ids: list[int]) -> tuple[float, float, int]:
    """Seconds to fan out with the variants set by a CASE in the INSERT, and by the INSERT
    then one UPDATE per variant (variants rendered once beforehand, outside the timing)."""
    with db.session() as session:
        newsletter = session.scalar(select(Newsletter).where(Newsletter.slug == "bench"))
        assert newsletter is not None
        kept = list(
            session.scalars(select(Article).where(Article.id.in_(ids)).order_by(Article.id))
        )
        sections = sorted({a.section for a in kept if a.section})
        edition = session.get_one(Edition, _bare_edition(db, newsletter.id))
        readers = readers_of(session, newsletter.id, sections)
        variants = section_variants(session, settings, edition, newsletter, kept, readers)
        session.commit()
        newsletter_id = newsletter.id
        source_id = edition.id

    def with_case(edition_id: int, own: dict[int, frozenset[str]]) -> None:
        with db.session() as session:
            fan_out(session, edition_id, newsletter_id, "x.ge", utcnow(), sections, None, own)
            session.commit()

    def with_updates(edition_id: int, own: dict[int, frozenset[str]]) -> None:
        with db.session() as session:
            fan_out(session, edition_id, newsletter_id, "x.ge", utcnow(), sections)
            for variant_id, stored in own.items():
                chose = select(Subscription.subscriber_id).where(
                    Subscription.newsletter_id == newsletter_id,
                    met_key(session, sections) == met_text(stored),
                )
                session.execute(
                    update(Delivery)
                    .where(Delivery.edition_id == edition_id, Delivery.subscriber_id.in_(chose))
                    .values(variant_id=variant_id)
                    .execution_options(synchronize_session=False)
                )
            session.commit()

    by_case = _edition_with(db, newsletter_id, source_id, variants)
    by_updates = _edition_with(db, newsletter_id, source_id, variants)
    return (
        _timed(lambda: with_case(*by_case)),
        _timed(lambda: with_updates(*by_updates)),
        len(variants),
    )


def _timed(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, fresh_database() as url:
        os.environ.update(
            {
                "TIDINGS_DATABASE_URL": url,
                "TIDINGS_DATA_DIR": folder,
                "TIDINGS_SECRET_KEY": "bench-" + "k" * 40,
            }
        )
        settings = load_settings()
        whole = settings.model_copy(update={"max_section_variants": 0})
        db = open_database(url)
        upgrade(db.engine)
        ids = _setup(db, folder, args.readers)
        results: dict[str, list[tuple[float, int, float, int]]] = {"whole": [], "sections": []}
        for _ in range(args.rounds):
            results["whole"].append(_round(db, whole, ids))
            results["sections"].append(_round(db, settings, ids))
        case_s, update_s, variants = [], [], 0
        for _ in range(args.rounds):
            by_case, by_updates, variants = _assignment(db, settings, ids)
            case_s.append(by_case)
            update_s.append(by_updates)
        db.dispose()
    print(f"{args.readers} readers, {ARTICLES} articles in {len(SECTIONS)} sections, ", end="")
    print(f"median of {args.rounds} rounds")
    print(f"{'':34}{'renders':>8}{'deliveries':>11}{'compose+fan-out':>16}{'per reader':>12}")
    print(f"{'':34}{'':>8}{'':>11}{'(s)':>16}{'(us)':>12}{'bytes/msg':>11}")
    for name, label in (
        ("whole", "whole edition for all (baseline)"),
        ("sections", "section variants"),
    ):
        rows = results[name]
        seconds = statistics.median(r[0] for r in rows)
        renders = rows[-1][1]
        sent = rows[-1][3]
        size = statistics.median(r[2] for r in rows)
        print(
            f"{label:34}{renders:>8}{sent:>11}{seconds:>16.2f}"
            f"{seconds / sent * 1e6:>12.1f}{size:>11.0f}"
        )
    print(f"setting {variants} variants in the fan-out (median s):")
    print(f"  CASE in the one INSERT ... SELECT : {statistics.median(case_s):6.3f}")
    print(f"  INSERT, then one UPDATE a variant : {statistics.median(update_s):6.3f}")


if __name__ == "__main__":
    main()
