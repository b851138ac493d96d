"""The merge step counts and writes the same whatever the batch size: the staged addresses
applied one, three or all at a time; on SQLite and PostgreSQL."""

from pathlib import Path

import pytest
from sqlalchemy import select

from tests.audience.people import audience
from tidings.audience.imports.importer import import_subscribers
from tidings.db.engine import Database
from tidings.db.models import Subscriber, Subscription


def _rows(db: Database) -> list[tuple[object, ...]]:
    with db.session() as session:
        return [
            tuple(row)
            for row in session.execute(
                select(
                    Subscriber.email,
                    Subscriber.name,
                    Subscriber.attributes,
                    Subscription.newsletter_id,
                    Subscription.status,
                )
                .join(Subscription, Subscription.subscriber_id == Subscriber.id)
                .order_by(Subscriber.email, Subscription.newsletter_id)
            )
        ]


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_counts_and_rows_do_not_depend_on_the_batch_size(
    db: Database, tmp_path: Path, batch_size: int
) -> None:
    people = audience(db)
    path = tmp_path / "people.csv"
    path.write_text(
        "email,name,city\n"
        "ana@example.ge,,Gori\n"  # known, in daily already, a new attribute: updated
        "bob@example.ge,Bob,\n"  # suppressed: skipped
        "cara_x@example.ge,Cara 100%,\n"  # unsubscribed: stays, unchanged
        "dato@example.ge,Dato,\n"  # known, same values: unchanged, subscribed to daily
        "eka@example.ge,Eka,\n"  # known, a name now: updated, subscribed to daily
        "new1@example.ge,New One,Batumi\n"
        "NEW1@example.ge,,Poti\n"  # a duplicate, merged
        "new2@example.ge,,\n"
        "not-an-address,,\n"
    )
    report = import_subscribers(db, "daily", path, confirmed=True, batch_size=batch_size)
    assert (report.rows_read, report.addresses, report.duplicates_merged, len(report.invalid)) == (
        9,
        7,
        1,
        1,
    )
    assert (report.created, report.updated, report.unchanged, report.suppressed) == (2, 2, 2, 1)
    assert (report.subscribed, report.activated, report.kept_unsubscribed) == (4, 0, 1)
    rows = _rows(db)
    daily = {
        email: (name, attributes, status)
        for email, name, attributes, n, status in rows
        if n == people.daily
    }
    assert daily["ana@example.ge"][1] == {"city": "Gori"}
    assert daily["new1@example.ge"] == ("New One", {"city": "Batumi"}, "active")
    assert set(daily) == {
        "ana@example.ge",
        "bob@example.ge",
        "cara_x@example.ge",
        "dato@example.ge",
        "eka@example.ge",
        "new1@example.ge",
        "new2@example.ge",
    }
    assert daily["cara_x@example.ge"][2] == "unsubscribed"
    assert daily["bob@example.ge"][2] == "pending"  # suppressed: never activated
