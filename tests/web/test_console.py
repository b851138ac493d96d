"""The console's pages and forms over real HTTP, signed in as an admin."""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import ColumnElement, func, select

from tests.builders import articles, newsletter, subscribers
from tests.smtpserver import RecordingHandler, smtp_server
from tests.web.console import csrf, make_user, sign_in
from tests.web.forms import confirmation
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    Edition,
    EditionStatus,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    UserRole,
)
from tidings.web.security import FRAMED_MAIL_POLICY


@dataclass
class Console:
    client: httpx.Client
    token: str
    db: Database
    smtp: RecordingHandler

    def post(self, path: str, **data: str) -> httpx.Response:
        return self.client.post(path, data={"csrf_token": self.token, **data})


@pytest.fixture
def console(db: Database, settings: Settings) -> Iterator[Console]:
    newsletter(db)
    articles(db, "daily", 3, datetime.now(UTC) - timedelta(hours=2))
    subscribers(db, "daily", 5)
    email = make_user(db, UserRole.admin)
    with smtp_server() as (handler, port):
        with_smtp = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        with web_server(with_smtp, db) as base:
            client = sign_in(base, email)
            yield Console(client, csrf(client), db, handler)


def _count(db: Database, model: type, *where: ColumnElement[bool]) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_dashboard_shows_counts_next_send_and_charts(console: Console) -> None:
    page = console.client.get("/admin")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "The Daily Messenger" in page.text and "Next send:" in page.text
    assert page.text.count("<svg") == 2 and 'aria-label="Active subscribers: from' in page.text


def test_search_pages_detail_and_export(console: Console) -> None:
    found = console.client.get("/admin/subscribers", params={"q": "READER3"}).text
    assert "reader3@example.ge" in found and "reader4@example.ge" not in found
    underscore = console.client.get("/admin/subscribers", params={"q": "_"}).text
    assert "Nobody matches" in underscore  # LIKE wildcards are searched for literally
    with console.db.session() as session:
        subscriber_id = session.scalars(
            select(Subscriber.id).where(Subscriber.email == "reader3@example.ge")
        ).one()
    detail = console.client.get(f"/admin/subscribers/{subscriber_id}").text
    assert "The Daily Messenger" in detail and "Nothing sent yet" in detail
    exported = console.client.get(
        "/admin/subscribers/export.csv", params={"newsletter": "daily", "q": "reader1"}
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["email"] for row in rows] == ["reader1@example.ge"]
    refused = console.client.get("/admin/subscribers/export.csv")
    assert refused.status_code == 422 and "choose a newsletter" in refused.text


def test_bulk_actions_ask_first_then_act_on_the_filter(console: Console) -> None:
    ask = console.post("/admin/subscribers/bulk", action="unsubscribe", q="reader1")
    assert "Unsubscribe 1 subscriber(s)?" in ask.text
    assert _count(console.db, Subscription, Subscription.status == "unsubscribed") == 0
    console.post("/admin/subscribers/bulk", action="unsubscribe", q="reader1", confirm="yes")
    assert _count(console.db, Subscription, Subscription.status == "unsubscribed") == 1
    console.post("/admin/subscribers/bulk", action="suppress", q="reader2", confirm="yes")
    assert _count(console.db, Suppression) == 1
    done = console.post(
        "/admin/subscribers/bulk", action="delete", status="unsubscribed", confirm="yes"
    )
    assert "delete: 1 changed" in done.text
    assert _count(console.db, Subscriber) == 4


def test_erase_keeps_anonymous_delivery_counts(console: Console) -> None:
    asked = console.post("/admin/editions/new", newsletter="daily", do="send", subject="Evening")
    builder = console.client.post("/admin/editions/new", data=confirmation(asked.text))
    assert builder.status_code == 303
    with console.db.session() as session:
        subscriber_id = session.scalars(
            select(Subscriber.id).where(Subscriber.email == "reader0@example.ge")
        ).one()
    unsure = console.post(f"/admin/subscribers/{subscriber_id}/erase")  # not confirmed: asks
    assert unsure.headers["location"] == f"/admin/subscribers/{subscriber_id}/erase"
    assert _count(console.db, Subscriber, Subscriber.email == "reader0@example.ge") == 1
    erased = console.post(f"/admin/subscribers/{subscriber_id}/erase", sure="yes")
    assert erased.status_code == 303
    assert _count(console.db, Subscriber, Subscriber.email == "reader0@example.ge") == 0
    assert _count(console.db, Delivery) == 5
    assert _count(console.db, Delivery, Delivery.subscriber_id.is_(None)) == 1


def test_suppression_list_add_and_remove(console: Console) -> None:
    console.post("/admin/suppressions", email="Bounced@Example.GE", detail="mailbox gone")
    page = console.client.get("/admin/suppressions").text
    assert "bounced@example.ge" in page and "mailbox gone" in page
    with console.db.session() as session:
        suppression_id = session.scalars(select(Suppression.id)).one()
    console.post(f"/admin/suppressions/{suppression_id}/remove")
    assert _count(console.db, Suppression) == 0
    bad = console.post("/admin/suppressions", email="not an address")
    assert bad.status_code == 422 and "That was not done" in bad.text


def test_newsletter_create_edit_feeds_and_schedule_preview(console: Console) -> None:
    form = {
        "slug": "weekend",
        "name": "The Weekend Messenger",
        "sender": "The Messenger <weekend@messenger.example.ge>",
        "schedule": "0 9 * * 6",
        "timezone": "Asia/Tbilisi",
        "min_articles": "1",
        "max_articles": "10",
    }
    assert console.post("/admin/newsletters/new", **form).status_code == 303
    page = console.client.get("/admin/newsletters/weekend").text
    # The schedule in words, then the next five sends, in Tbilisi time.
    assert "Every Saturday at 09:00 (Asia/Tbilisi)" in page
    assert page.count("Saturday") == 6
    assert "09:00 (Asia/Tbilisi)" in page
    assert "/subscribe/weekend" in page and "&lt;form method=&#34;post&#34;" in page
    changed = console.post(
        "/admin/newsletters/weekend/edit", **{**form, "name": "Weekend", "schedule": "bad"}
    )
    assert changed.status_code == 422 and "crontab" in changed.text
    console.post("/admin/newsletters/weekend/edit", **{**form, "name": "Weekend"})
    with console.db.session() as session:
        assert (
            session.scalars(select(Newsletter.name).where(Newsletter.slug == "weekend")).one()
            == "Weekend"
        )
    console.post("/admin/newsletters/weekend/feeds", url="https://messenger.example.ge/rss")
    again = console.post("/admin/newsletters/weekend/feeds", url="https://messenger.example.ge/rss")
    assert again.status_code == 409
    assert (
        "https://messenger.example.ge/rss" in console.client.get("/admin/newsletters/weekend").text
    )


def test_next_edition_preview_is_framed_with_a_sandbox(console: Console) -> None:
    page = console.client.get("/admin/editions/next/daily")
    assert page.status_code == 200 and "Story 2: Panjikidze meets envoys" in page.text
    assert 'src="/admin/editions/next/daily/preview.html"' in page.text
    frame = console.client.get("/admin/editions/next/daily/preview.html")
    policy = frame.headers["content-security-policy"]
    assert policy == FRAMED_MAIL_POLICY  # the one framed-mail policy, as the mailbox sends it
    assert policy.startswith("sandbox;") and "script-src" not in policy  # no scripts at all
    assert "default-src 'none'" in policy
    assert policy.endswith("frame-ancestors 'self'")  # framed by the console, by nothing else
    assert "Story 2: Panjikidze meets envoys" in frame.text


def test_builder_test_send_and_schedule(console: Console) -> None:
    tested = console.post(
        "/admin/editions/new", newsletter="daily", do="test", tests="ed@messenger.example.ge"
    )
    assert "ed@messenger.example.ge: sent" in tested.text
    assert console.smtp.recipients() == ["ed@messenger.example.ge"]
    assert _count(console.db, Edition) == 0  # a test stores nothing
    too_many = console.post(
        "/admin/editions/new",
        newsletter="daily",
        do="test",
        tests=" ".join(f"t{i}@example.ge" for i in range(6)),
    )
    assert "Give one to 5 test addresses." in too_many.text
    asked = console.post(
        "/admin/editions/new", newsletter="daily", do="schedule", send_at="2099-01-01T08:00"
    )
    scheduled = console.client.post("/admin/editions/new", data=confirmation(asked.text))
    assert scheduled.status_code == 303
    with console.db.session() as session:
        edition = session.scalars(select(Edition)).one()
    assert edition.status == EditionStatus.scheduled
    assert edition.scheduled_for == datetime(2099, 1, 1, 4, 0, tzinfo=UTC)  # 08:00 in Tbilisi
    page = console.client.get(f"/admin/editions/{edition.id}").text
    assert "Cancel" in page and "Cancel the rest" not in page
    assert "Pause" not in page and "0 of 0" not in page
    console.post(f"/admin/editions/{edition.id}/cancel")
    with console.db.session() as session:
        assert session.get_one(Edition, edition.id).status == EditionStatus.cancelled
    progress = console.client.get(f"/admin/editions/{edition.id}/progress.json").json()
    assert progress["status"] == "cancelled" and progress["total"] == 0


def test_access_page_makes_users_and_tokens_shown_once(console: Console) -> None:
    made = console.post("/admin/access/users", email="editor2@messenger.example.ge", role="editor")
    # Mail is configured here: the new user is invited by mail, not shown a password.
    assert "has been sent an invitation" in made.text
    token = console.post("/admin/access/tokens", name="CMS", role="editor")
    secret = token.text.split("<code>tid_", 1)[1].split("</code>", 1)[0]
    api = httpx.get(
        str(console.client.base_url) + "/api/v1/newsletters",
        headers={"Authorization": f"Bearer tid_{secret}"},
    )
    assert api.status_code == 200
    assert f"tid_{secret}" not in console.client.get("/admin/access").text


def test_subscription_states_after_bulk_actions_are_what_the_list_filters(console: Console) -> None:
    console.post("/admin/subscribers/bulk", action="unsubscribe", q="reader4", confirm="yes")
    page = console.client.get(
        "/admin/subscribers",
        params={"newsletter": "daily", "status": SubscriptionStatus.unsubscribed.value},
    ).text
    assert "reader4@example.ge" in page and "reader3@example.ge" not in page


def test_csv_import_previews_then_imports_reports_and_forgets_the_file(
    console: Console, settings: Settings
) -> None:
    body = "email,name\nnino@example.ge,Nino\nbroken,Bad\nNINO@example.ge,\n"
    preview = console.client.post(
        "/admin/subscribers/import",
        data={"csrf_token": console.token, "newsletter": "daily", "confirmed": "true"},
        files={"file": ("readers.csv", body.encode(), "text/csv")},
    )
    assert preview.status_code == 200 and "nino@example.ge" in preview.text
    key = preview.text.split('action="/admin/subscribers/import/', 1)[1].split('"', 1)[0]
    uploads = settings.data_dir / "uploads"
    assert (uploads / f"{key}.csv").exists()
    done = console.post(f"/admin/subscribers/import/{key}", newsletter="daily", confirmed="true")
    assert done.status_code == 200 and "line 3: " in done.text
    assert not (uploads / f"{key}.csv").exists()  # personal data is not kept
    report = console.client.get(f"/admin/subscribers/import/{key}/report.csv")
    rows = dict(csv.reader(io.StringIO(report.text)))
    assert rows["new subscribers"] == "1" and rows["duplicate rows merged"] == "1"
    assert rows["invalid rows"] == "1" and "invalid row, line 3" in rows
    again = console.post(f"/admin/subscribers/import/{key}", newsletter="daily")
    assert again.status_code == 404 and "upload the file again" in again.text
    assert (
        console.client.get("/admin/subscribers/import/../../secret_key/report.csv").status_code
        == 404
    )
