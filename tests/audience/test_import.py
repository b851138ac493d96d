import csv
import io
import random
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import Cli
from tidings.audience.export import export_subscribers
from tidings.audience.imports.importer import import_subscribers
from tidings.audience.service import add_subscriber
from tidings.catalog.newsletters import NewsletterSpec, create_newsletter
from tidings.db.engine import Database
from tidings.db.models import (
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)

HEADER = "email,name,locale,timezone,city\n"


@pytest.fixture
def newsletter(db: Database) -> str:
    create_newsletter(db, NewsletterSpec(slug="daily", name="Daily", sender="D <d@example.org>"))
    return "daily"


def _write(tmp_path: Path, text: str, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _snapshot(db: Database) -> list[tuple[object, ...]]:
    with db.session() as session:
        rows = session.execute(
            select(
                Subscriber.email,
                Subscriber.name,
                Subscriber.locale,
                Subscriber.timezone,
                Subscriber.attributes,
                Subscriber.updated_at,
                Subscription.status,
                Subscription.updated_at,
            )
            .join(Subscription, Subscription.subscriber_id == Subscriber.id)
            .order_by(Subscriber.email)
        )
        return [tuple(row) for row in rows]


def test_import_merges_duplicates_reports_bad_rows_and_keeps_attributes(
    db: Database, newsletter: str, tmp_path: Path
) -> None:
    path = _write(
        tmp_path,
        HEADER
        + "nino@example.ge,,ka,,Tbilisi\n"
        + "not-an-address,Bad,,,\n"
        + "NINO@Example.GE,Nino Beridze,en,Asia/Tbilisi,Kutaisi\n"
        + "giorgi@example.ge,Giorgi,xx_bad!,,\n"
        + '"tamar@example.ge","Tamar\nKiknadze",en,Mars/Olympus,\n'
        + "levan@example.ge,Levan,ka,Asia/Tbilisi,Telavi\n",
    )
    report = import_subscribers(db, newsletter, path, confirmed=True, batch_size=2)
    assert (report.rows_read, report.created, report.duplicates_merged) == (6, 2, 1)
    assert [(e.line, e.reason.split(":")[0]) for e in report.invalid] == [
        (3, "'not-an-address'"),
        (5, "locale 'xx_bad!' is not a language tag such as en or ka-GE"),
        (7, "timezone 'Mars/Olympus' is not an IANA time zone"),
    ]
    rows = {row[0]: row for row in _snapshot(db)}
    assert set(rows) == {"nino@example.ge", "levan@example.ge"}
    nino = rows["nino@example.ge"]
    # The first row's values win; the duplicate fills what the first left empty.
    assert nino[1:5] == ("Nino Beridze", "ka", "Asia/Tbilisi", {"city": "Tbilisi"})
    assert nino[6] == SubscriptionStatus.active


def test_rerunning_the_same_file_changes_nothing(
    db: Database, newsletter: str, tmp_path: Path
) -> None:
    text = HEADER + "".join(
        f"person{i}@example.ge,Person {i},ka,Asia/Tbilisi,City {i % 3}\n" for i in range(50)
    )
    text += "PERSON7@EXAMPLE.GE,Someone Else,en,,Elsewhere\n"
    path = _write(tmp_path, text)
    first = import_subscribers(db, newsletter, path, confirmed=False, batch_size=7)
    assert (first.created, first.subscribed, first.duplicates_merged) == (50, 50, 1)
    before = _snapshot(db)
    again = import_subscribers(db, newsletter, path, confirmed=False, batch_size=7)
    assert (again.created, again.updated, again.unchanged, again.subscribed) == (0, 0, 50, 0)
    assert _snapshot(db) == before


def test_existing_values_are_updated_and_attributes_merged(
    db: Database, newsletter: str, tmp_path: Path
) -> None:
    import_subscribers(
        db,
        newsletter,
        _write(tmp_path, "email,name,city\na@example.ge,A,Gori\n"),
        confirmed=True,
        batch_size=10,
    )
    second = import_subscribers(
        db,
        newsletter,
        _write(tmp_path, "email,name,plan\na@example.ge,,gold\n", "b.csv"),
        confirmed=True,
        batch_size=10,
    )
    assert (second.updated, second.unchanged) == (1, 0)
    ((_, name, _, _, attributes, *_),) = _snapshot(db)
    assert name == "A"  # an empty cell never erases a stored value
    assert attributes == {"city": "Gori", "plan": "gold"}


def test_suppressed_and_unsubscribed_addresses_are_never_made_active(
    db: Database, newsletter: str, tmp_path: Path
) -> None:
    add_subscriber(db, newsletter, "left@example.ge", "Left", confirmed=True, source="test")
    add_subscriber(db, newsletter, "waiting@example.ge", None, confirmed=False, source="test")
    with db.session() as session:
        session.add(Suppression(email="bounced@example.ge", reason=SuppressionReason.hard_bounce))
        subscription = session.scalars(select(Subscription)).first()
        assert subscription is not None
        subscription.status = SubscriptionStatus.unsubscribed
        session.commit()
    path = _write(
        tmp_path,
        "email\nleft@example.ge\nwaiting@example.ge\nBOUNCED@example.ge\nnew@example.ge\n",
    )
    report = import_subscribers(db, newsletter, path, confirmed=True, batch_size=100)
    assert (report.suppressed, report.activated, report.kept_unsubscribed) == (1, 1, 1)
    assert report.subscribed == 1
    statuses = {row[0]: row[6] for row in _snapshot(db)}
    assert statuses == {
        "left@example.ge": SubscriptionStatus.unsubscribed,
        "waiting@example.ge": SubscriptionStatus.active,
        "new@example.ge": SubscriptionStatus.active,
    }


def test_export_guards_formulas_and_imports_back_unchanged(
    db: Database, newsletter: str, tmp_path: Path
) -> None:
    path = _write(
        tmp_path,
        "email,name,locale,timezone,note\n"
        'a@example.ge,=HYPERLINK("http://evil"),ka,Asia/Tbilisi,-5\n'
        "b@example.ge,ლევან წერეთელი,,,plain\n",
    )
    import_subscribers(db, newsletter, path, confirmed=True, batch_size=10)
    out = io.StringIO()
    assert export_subscribers(db, newsletter, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["name"] == '\'=HYPERLINK("http://evil")'
    assert rows[0]["note"] == "'-5"
    assert rows[1]["name"] == "ლევან წერეთელი"
    assert rows[0]["status"] == "active"
    before = _snapshot(db)
    again = import_subscribers(
        db,
        newsletter,
        _write(tmp_path, out.getvalue(), "export.csv"),
        confirmed=True,
        batch_size=10,
    )
    assert (again.unchanged, again.updated, again.created) == (2, 0, 0)
    assert _snapshot(db) == before


def test_header_problems_are_one_clear_error(db: Database, newsletter: str, tmp_path: Path) -> None:
    from tidings.errors import InvalidInput

    for text, message in [
        ("", "empty"),
        ("name,city\nx,y\n", "no 'email' column"),
        ("email,Email\n", "names a column twice"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            import_subscribers(db, newsletter, _write(tmp_path, text), True, 10)


def test_hundred_thousand_rows_with_bad_rows_and_case_variant_duplicates(
    db: Database, newsletter: str, tmp_path: Path
) -> None:
    rng = random.Random(7)
    lines = [HEADER]
    bad_lines: list[int] = []
    for i in range(100_000):
        line_number = i + 2
        if rng.random() < 0.01:
            lines.append(f"broken-{i}-at-nowhere,Broken {i},,,\n")
            bad_lines.append(line_number)
        elif i % 50 == 49:
            # a case variant of an earlier address
            lines.append(f"Reader{i - 10}@Example.GE,Reader {i - 10},,,\n")
        else:
            lines.append(f"reader{i}@example.ge,Reader {i},ka,Asia/Tbilisi,City{i % 97}\n")
    path = _write(tmp_path, "".join(lines))
    report = import_subscribers(db, newsletter, path, confirmed=True, batch_size=10_000)
    assert report.rows_read == 100_000
    assert [e.line for e in report.invalid] == bad_lines
    valid = 100_000 - len(bad_lines)
    assert report.created + report.duplicates_merged == valid
    assert report.duplicates_merged > 1500
    with db.session() as session:
        count = session.query(Subscription).count()
    assert count == report.created == report.subscribed
    again = import_subscribers(db, newsletter, path, confirmed=True, batch_size=10_000)
    assert (again.created, again.updated, again.subscribed, again.activated) == (0, 0, 0, 0)


def test_cli_import_stores_idn_in_ascii_and_refuses_utf8_local_parts_and_wide_rows(
    db: Database, newsletter: str, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_MAX_ATTRIBUTES", "3")
    path = _write(
        tmp_path,
        "email,a,b,c,d\n"
        "Nino@Пример.РФ,1,,,\n"
        "нино@example.ge,,,,\n"
        "wide@example.ge,1,2,3,4\n"
        "lasha@example.ge,,,,x\n",
    )
    report_path = tmp_path / "invalid.csv"
    result = cli(
        "subscribers",
        "import",
        str(path),
        "--newsletter",
        newsletter,
        "--invalid-report",
        str(report_path),
    )
    assert result.exit_code == 0, result.output
    with db.session() as session:
        assert set(session.scalars(select(Subscriber.email))) == {
            "nino@xn--e1afmkfd.xn--p1ai",
            "lasha@example.ge",
        }
    invalid = list(csv.reader(report_path.open(encoding="utf-8")))[1:]
    assert [line for line, _ in invalid] == ["3", "4"]
    assert "before the @-sign" in invalid[0][1]
    assert "4 attributes; at most 3" in invalid[1][1]


def test_export_guards_formula_column_names_and_imports_them_back(
    db: Database, newsletter: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, "email,'=cmd|' /C calc'!A0\nnino@example.ge,1\n")
    import_subscribers(db, newsletter, path, confirmed=True, batch_size=10)
    with db.session() as session:
        stored = session.scalars(select(Subscriber.attributes)).one()
    assert stored == {"=cmd|' /c calc'!a0": "1"}
    out = io.StringIO()
    export_subscribers(db, newsletter, out)
    header = next(csv.reader(io.StringIO(out.getvalue())))
    assert header[-1] == "'=cmd|' /c calc'!a0"
    before = _snapshot(db)
    again = import_subscribers(db, newsletter, _write(tmp_path, out.getvalue(), "e.csv"), True, 10)
    assert again.unchanged == 1 and _snapshot(db) == before
