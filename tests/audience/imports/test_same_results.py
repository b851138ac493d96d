"""A tricky file imported on both databases gives exactly the report and the rows the import
gave before it was made fast (issue 13): the expectations below were read off the old import
(commit f2ada4b) and checked by hand, so the new code cannot vouch for itself."""

from pathlib import Path

import pytest
from sqlalchemy import select

from tests.audience.people import audience
from tidings.audience.imports.importer import ImportReport, import_subscribers
from tidings.audience.service import add_subscriber
from tidings.db.engine import Database
from tidings.db.models import Newsletter, Subscriber, SubscriberEvent, Subscription

# Line numbers are the file's: the header is line 1, the quoted name spans lines 11-12, and
# the blank line 15 is not a row at all.
TRICKY = (
    "Email,Name,LOCALE,timezone,city,plan\n"
    "ana@example.ge,,,,Gori,\n"  # 2 known: a new attribute, so updated
    "Bob@Example.GE,Bobby,,,,\n"  # 3 suppressed: skipped, name untouched
    "cara_x@example.ge,Cara 100%,,,,\n"  # 4 unsubscribed from daily: stays so, unchanged
    "dato@example.ge,Dato,,,,\n"  # 5 known with the same values: unchanged, joins daily
    "nino@пример.рф,Nino,ka,Asia/Tbilisi,Tbilisi,gold\n"  # 6 IDN domain, stored in ASCII
    "NINO@xn--e1afmkfd.xn--p1ai,Nino Beridze,en,,Kutaisi,\n"  # 7 the same address: merged
    "not-an-address,Bad,,,,\n"  # 8 refused
    "levan@example.ge,Levan,xx_bad!,,,\n"  # 9 refused: locale
    "eka@example.ge,,,,,\n"  # 10 known, weekly pending; its duplicate below fills the gaps
    '"tamar@example.ge","Tamar\nKiknadze",en,Europe/Berlin,,\n'  # 11-12 name folded
    "EKA@example.ge,Eka,ka,,Batumi,silver\n"  # 13 duplicate of line 10
    "zura@example.ge,,,Mars/Olympus,,\n"  # 14 refused: time zone
    "\n"  # 15 blank: not a row
    "Giorgi@Example.GE,Giorgi,ka-GE,Asia/Tbilisi,'=SUM(A1),\n"  # 16 guarded formula undone
    "gia@example.ge,,,,,\n"  # 17 pending in daily: made active
    "нино@example.ge,Нино,,,,\n"  # 18 refused: UTF-8 before the @-sign
    "wide@example.ge,W,,,,,extra\n"  # 19 refused: more fields than the header
    "giorgi@example.ge,Someone Else,en,,Poti,\n"  # 20 duplicate of 16: first values win
)

EXPECTED_SUMMARY = [
    ("rows read", 17),
    ("new subscribers", 3),
    ("subscribers updated", 2),
    ("subscribers unchanged", 3),
    ("duplicate rows merged", 3),
    ("new subscriptions", 5),
    ("subscriptions activated", 1),
    ("left unsubscribed", 1),
    ("suppressed, skipped", 1),
    ("invalid rows", 5),
]
EXPECTED_INVALID = [
    (8, "'not-an-address': An email address must have an @-sign."),
    (9, "locale 'xx_bad!' is not a language tag such as en or ka-GE"),
    (14, "timezone 'Mars/Olympus' is not an IANA time zone"),
    (
        18,
        "'нино@example.ge': Internationalized characters before the @-sign are not supported: "
        "'и', 'н', 'о'.",  # noqa: RUF001 - Cyrillic, as the refused address has it
    ),
    (19, "7 fields but the header has 6"),
]
EXPECTED_SUBSCRIBERS = [
    ("ana@example.ge", "Ana Beridze", None, None, {"city": "Gori"}),
    ("bob@example.ge", "Bob", None, None, {}),
    ("cara_x@example.ge", "Cara 100%", None, None, {}),
    ("dato@example.ge", "Dato", None, None, {}),
    ("eka@example.ge", "Eka", "ka", None, {"city": "Batumi", "plan": "silver"}),
    ("gia@example.ge", None, None, None, {}),
    ("giorgi@example.ge", "Giorgi", "ka-GE", "Asia/Tbilisi", {"city": "=SUM(A1)"}),
    (
        "nino@xn--e1afmkfd.xn--p1ai",
        "Nino",
        "ka",
        "Asia/Tbilisi",
        {"city": "Tbilisi", "plan": "gold"},
    ),
    ("tamar@example.ge", "Tamar Kiknadze", "en", "Europe/Berlin", {}),
]
SOURCE = "csv import: people.csv"
# (address, newsletter, status, consent method, consent source, confirmed?) of every
# subscription; the import never sends (or marks as sent) a welcome or a confirmation.
EXPECTED_SUBSCRIPTIONS = [
    ("ana@example.ge", "daily", "active", "admin", "test", True),
    ("ana@example.ge", "weekly", "active", "admin", "test", True),
    ("bob@example.ge", "daily", "pending", "admin", "test", False),
    ("cara_x@example.ge", "daily", "unsubscribed", "admin", "test", True),
    ("dato@example.ge", "daily", "active", "import", SOURCE, True),
    ("dato@example.ge", "weekly", "active", "admin", "test", True),
    ("eka@example.ge", "daily", "active", "import", SOURCE, True),
    ("eka@example.ge", "weekly", "pending", "admin", "test", False),
    ("gia@example.ge", "daily", "active", "admin", "test", True),
    ("giorgi@example.ge", "daily", "active", "import", SOURCE, True),
    ("nino@xn--e1afmkfd.xn--p1ai", "daily", "active", "import", SOURCE, True),
    ("tamar@example.ge", "daily", "active", "import", SOURCE, True),
]
# The import's own history events: (address, kind, newsletter, detail).
EXPECTED_EVENTS = [
    ("dato@example.ge", "imported", "daily", SOURCE),
    ("eka@example.ge", "imported", "daily", SOURCE),
    ("gia@example.ge", "confirmed", "daily", SOURCE),
    ("giorgi@example.ge", "imported", "daily", SOURCE),
    ("nino@xn--e1afmkfd.xn--p1ai", "imported", "daily", SOURCE),
    ("tamar@example.ge", "imported", "daily", SOURCE),
]


def _subscribers(db: Database) -> list[tuple[object, ...]]:
    s = Subscriber
    query = select(s.email, s.name, s.locale, s.timezone, s.attributes).order_by(s.email)
    with db.session() as session:
        return [tuple(row) for row in session.execute(query)]


def _subscriptions(db: Database) -> list[tuple[object, ...]]:
    query = (
        select(
            Subscriber.email,
            Newsletter.slug,
            Subscription.status,
            Subscription.consent_method,
            Subscription.consent_source,
            Subscription.confirmed_at.is_not(None),
            Subscription.welcome_sent_at,
            Subscription.confirmation_sent_at,
            Subscription.cadence,
        )
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .join(Newsletter, Newsletter.id == Subscription.newsletter_id)
        .order_by(Subscriber.email, Newsletter.slug)
    )
    with db.session() as session:
        rows = [tuple(row) for row in session.execute(query)]
    assert {row[6:] for row in rows} == {(None, None, "daily")}
    return [(e, slug, str(status), m, src, bool(c)) for e, slug, status, m, src, c, *_ in rows]


def _import_events(db: Database) -> list[tuple[object, ...]]:
    query = (
        select(Subscriber.email, SubscriberEvent.kind, Newsletter.slug, SubscriberEvent.detail)
        .join(Subscriber, Subscriber.id == SubscriberEvent.subscriber_id)
        .join(Newsletter, Newsletter.id == SubscriberEvent.newsletter_id)
        .where(SubscriberEvent.source == "import")
        .order_by(Subscriber.email, SubscriberEvent.kind)
    )
    with db.session() as session:
        return [(e, str(kind), slug, detail) for e, kind, slug, detail in session.execute(query)]


def _reported(report: ImportReport) -> tuple[object, ...]:
    return report.summary(), [(error.line, error.reason) for error in report.invalid]


@pytest.mark.parametrize("batch_size", [2, 1000])
def test_a_tricky_file_gives_the_same_report_and_rows_as_before(
    db: Database, tmp_path: Path, batch_size: int
) -> None:
    audience(db)
    add_subscriber(db, "daily", "gia@example.ge", None, confirmed=False, source="test")
    path = tmp_path / "people.csv"
    path.write_text(TRICKY, encoding="utf-8")

    report = import_subscribers(db, "daily", path, confirmed=True, batch_size=batch_size)

    assert _reported(report) == (EXPECTED_SUMMARY, EXPECTED_INVALID)
    assert report.addresses == 9
    assert _subscribers(db) == EXPECTED_SUBSCRIBERS
    assert _subscriptions(db) == EXPECTED_SUBSCRIPTIONS
    assert _import_events(db) == EXPECTED_EVENTS

    # Run again, unconfirmed, into the weekly newsletter: new subscriptions are pending,
    # eka's pending one stays pending, and nothing about the people changes.
    again = import_subscribers(db, "weekly", path, confirmed=False, batch_size=batch_size)
    assert _reported(again) == (
        [
            ("rows read", 17),
            ("new subscribers", 0),
            ("subscribers updated", 0),
            ("subscribers unchanged", 8),
            ("duplicate rows merged", 3),
            ("new subscriptions", 5),
            ("subscriptions activated", 0),
            ("left unsubscribed", 0),
            ("suppressed, skipped", 1),
            ("invalid rows", 5),
        ],
        EXPECTED_INVALID,
    )
    assert _subscribers(db) == EXPECTED_SUBSCRIBERS
    weekly = [row for row in _subscriptions(db) if row[1] == "weekly"]
    assert weekly == [
        ("ana@example.ge", "weekly", "active", "admin", "test", True),
        ("cara_x@example.ge", "weekly", "pending", "import", SOURCE, False),
        ("dato@example.ge", "weekly", "active", "admin", "test", True),
        ("eka@example.ge", "weekly", "pending", "admin", "test", False),
        ("gia@example.ge", "weekly", "pending", "import", SOURCE, False),
        ("giorgi@example.ge", "weekly", "pending", "import", SOURCE, False),
        ("nino@xn--e1afmkfd.xn--p1ai", "weekly", "pending", "import", SOURCE, False),
        ("tamar@example.ge", "weekly", "pending", "import", SOURCE, False),
    ]
    assert [e for e in _import_events(db) if e[2] == "weekly"] == [
        ("cara_x@example.ge", "imported", "weekly", SOURCE),
        ("gia@example.ge", "imported", "weekly", SOURCE),
        ("giorgi@example.ge", "imported", "weekly", SOURCE),
        ("nino@xn--e1afmkfd.xn--p1ai", "imported", "weekly", SOURCE),
        ("tamar@example.ge", "imported", "weekly", SOURCE),
    ]
