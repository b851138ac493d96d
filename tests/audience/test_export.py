"""The CSV export: the newsletter's subscribers (or those a filter matches), their attributes
as columns, and every page of a long list; on SQLite and PostgreSQL."""

import csv
import io
from pathlib import Path

from tests.audience.people import audience
from tidings.audience.export import EXPORT_PAGE, export_subscribers
from tidings.audience.imports.importer import import_subscribers
from tidings.audience.search import AudienceFilter
from tidings.audience.subscribers import SubscriberChange, update_subscriber
from tidings.db.engine import Database
from tidings.db.models import SubscriptionStatus


def _export(
    db: Database, slug: str, matching: AudienceFilter | None = None
) -> list[dict[str, str]]:
    out = io.StringIO()
    written = export_subscribers(db, slug, out, matching)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert written == len(rows)
    return rows


def test_columns_statuses_and_attributes_of_one_newsletter(db: Database) -> None:
    people = audience(db)
    update_subscriber(
        db, people.ids["ana@example.ge"], SubscriberChange(attributes={"zone": "2", "city": "Gori"})
    )
    update_subscriber(db, people.ids["dato@example.ge"], SubscriberChange(attributes={"team": "x"}))
    rows = _export(db, "daily")
    assert list(rows[0]) == [
        "email",
        "name",
        "locale",
        "timezone",
        "status",
        "consent_at",
        "consent_method",
        "confirmed_at",
        "unsubscribed_at",
        "city",
        "zone",
    ]  # Dato's "team" belongs to weekly only
    assert [(r["email"], r["status"], r["city"]) for r in rows] == [
        ("ana@example.ge", "active", "Gori"),
        # Bob's address is suppressed after a hard bounce: never exported as pending/active.
        ("bob@example.ge", "bounced", ""),
        ("cara_x@example.ge", "unsubscribed", ""),
    ]
    assert rows[1]["confirmed_at"] == "" and rows[2]["unsubscribed_at"] != ""


def test_a_status_filter_means_this_newsletters_subscription(db: Database) -> None:
    audience(db)
    # Bob is pending in daily; in weekly, Eka is pending and Ana active.
    pending = _export(db, "weekly", AudienceFilter(status=SubscriptionStatus.pending))
    assert [r["email"] for r in pending] == ["eka@example.ge"]
    texts = _export(db, "daily", AudienceFilter(query="beridze"))
    assert [r["email"] for r in texts] == ["ana@example.ge"]


def test_a_list_longer_than_a_page_comes_out_whole(db: Database, tmp_path: Path) -> None:
    audience(db)
    many = EXPORT_PAGE + 2
    path = tmp_path / "many.csv"
    path.write_text("email\n" + "".join(f"r{n}@example.org\n" for n in range(many)))
    import_subscribers(db, "weekly", path, confirmed=True, batch_size=2_000)
    rows = _export(db, "weekly")
    addresses = [r["email"] for r in rows]
    assert len(addresses) == many + 3 and len(set(addresses)) == many + 3
