"""Batches applied side by side on PostgreSQL: a batch that fails stops the import with its
error, and running the import again completes it with nothing doubled."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from tidings.audience.imports.importer import import_subscribers
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.db.dialect import is_postgres
from tidings.db.engine import Database
from tidings.db.models import Subscriber, SubscriberEvent, Subscription, SubscriptionStatus

REFUSE = """
CREATE FUNCTION tidings_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.email = 'refused@example.ge' THEN RAISE EXCEPTION 'refused by the test'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER tidings_test_refuse BEFORE INSERT ON subscribers
    FOR EACH ROW EXECUTE FUNCTION tidings_test_refuse();
"""
ALLOW = """
DROP TRIGGER IF EXISTS tidings_test_refuse ON subscribers;
DROP FUNCTION IF EXISTS tidings_test_refuse();
"""


@pytest.fixture
def refusing(db: Database) -> Iterator[None]:
    """A database that refuses to store one address (a real trigger), until the test allows
    it again."""
    if not is_postgres(db.engine):
        pytest.skip("SQLite has one writer: its batches are applied one after another")
    with db.engine.begin() as connection:
        connection.execute(text(REFUSE))
    try:
        yield
    finally:
        _allow(db)


def _allow(db: Database) -> None:
    with db.engine.begin() as connection:
        connection.execute(text(ALLOW))


def _counts(db: Database) -> tuple[int, int, int]:
    with db.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Subscriber)) or 0,
            session.scalar(
                select(func.count()).where(Subscription.status == SubscriptionStatus.active)
            )
            or 0,
            session.scalar(select(func.count()).where(SubscriberEvent.source == "import")) or 0,
        )


def test_a_failing_batch_stops_the_import_and_a_second_run_completes_it(
    db: Database, refusing: None, tmp_path: Path
) -> None:
    create_newsletter(db, NewsletterSpec(slug="daily", name="Daily", sender="d@example.ge"))
    people = [f"reader{n:02}@example.ge" for n in range(12)] + ["refused@example.ge"]
    path = tmp_path / "people.csv"
    path.write_text("email\n" + "".join(f"{email}\n" for email in people), encoding="utf-8")

    with pytest.raises(DBAPIError, match="refused by the test"):
        import_subscribers(db, "daily", path, confirmed=True, batch_size=2)
    stored, _, _ = _counts(db)
    assert stored < len(people)

    _allow(db)
    again = import_subscribers(db, "daily", path, confirmed=True, batch_size=2)
    assert again.created + again.unchanged == len(people)
    assert again.created == len(people) - stored
    assert _counts(db) == (len(people), len(people), len(people))
