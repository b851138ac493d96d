"""The builder's confirmation step over real HTTP on both databases: send now and schedule
act only once confirmed; the confirmation page keeps every typed value; back returns them
to the builder; a test's unsubscribe page needs no sign-in and changes nothing."""

import html
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from tests.builders import articles, newsletter, subscribers
from tests.web.console import csrf, make_user, sign_in
from tests.web.forms import confirmation, form_to
from tests.webserver import web_server
from tidings.compose.sendtime import NO_TIME
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Edition, EditionStatus, UserRole
from tidings.mail.edition import TEST_UNSUBSCRIBE_PATH

INTRO = 'Two stories:\n\n- one\n- two & "three"'


@dataclass
class Builder:
    base: str
    client: httpx.Client
    token: str
    db: Database
    ids: list[int]

    def post(self, **data: str | list[str]) -> httpx.Response:
        return self.client.post("/admin/editions/new", data={"csrf_token": self.token, **data})

    def confirmed(self, **data: str | list[str]) -> httpx.Response:
        """Post the form, then press the confirmation page's button."""
        return self.client.post("/admin/editions/new", data=confirmation(self.post(**data).text))

    def editions(self) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(Edition)) or 0)


@pytest.fixture
def builder(db: Database, settings: Settings) -> Iterator[Builder]:
    newsletter(db)
    ids = articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=2))
    subscribers(db, "daily", 2)
    with web_server(settings, db) as base:
        client = sign_in(base, make_user(db, UserRole.editor))
        yield Builder(base, client, csrf(client), db, ids)


def test_send_now_asks_first_and_keeps_every_value(builder: Builder) -> None:
    typed = {
        "newsletter": "daily",
        "article": [str(builder.ids[1]), str(builder.ids[0])],
        f"pos_{builder.ids[1]}": "1",
        f"pos_{builder.ids[0]}": "2",
        "subject": "Evening <extra>",
        "intro": INTRO,
        "tests": "ed@example.ge",
        "test_reader": "reader0@example.ge",
    }
    asked = builder.post(do="send", **typed)
    assert asked.status_code == 200 and "Yes, send to 2 readers" in asked.text
    assert builder.editions() == 0  # nothing is sent before the editor confirms
    shown = html.unescape(asked.text)
    assert "Evening <extra>" in shown and "Asia/Tbilisi (" in shown and "UTC)" in shown
    assert "&lt;extra&gt;" in asked.text  # escaped in the page
    hidden = form_to(asked.text, "/admin/editions/new").hidden
    for name in ("subject", "intro", "tests", "test_reader", f"pos_{builder.ids[0]}"):
        assert hidden[name] == typed[name], name
    assert hidden["confirmed"] == "1" and hidden["newsletter"] == "daily"
    back = builder.post(do="back", confirmed="1", **typed)  # back needs no confirmation
    assert back.status_code == 200 and f">{INTRO}</textarea>" in html.unescape(back.text)
    assert 'value="Evening &lt;extra&gt;"' in back.text
    assert builder.editions() == 0
    unconfirmed = builder.post(do="send", confirmed="1", **typed)  # no token: asks again
    assert unconfirmed.status_code == 200 and builder.editions() == 0
    assert "Yes, send to 2 readers" in unconfirmed.text
    sent = builder.client.post("/admin/editions/new", data=confirmation(asked.text))
    assert sent.status_code == 303 and builder.editions() == 1


def test_schedule_asks_first_and_an_unreadable_time_is_said_at_once(builder: Builder) -> None:
    never = builder.post(newsletter="daily", do="schedule", send_at="")
    assert never.status_code == 200 and NO_TIME in never.text
    asked = builder.post(newsletter="daily", do="schedule", send_at="2099-06-01T09:00")
    assert "2099-06-01 09:00 Asia/Tbilisi (05:00 UTC)" in asked.text
    assert "Yes, schedule" in asked.text and builder.editions() == 0


def test_a_started_edition_is_not_changed_from_the_builder(builder: Builder) -> None:
    scheduled = builder.confirmed(
        newsletter="daily",
        do="schedule",
        send_at="2099-06-01T09:00",
        article=str(builder.ids[0]),
    )
    edition_id = int(scheduled.headers["location"].rsplit("/", 1)[1])
    loaded = builder.client.get(f"/admin/editions/new?edition={edition_id}")
    assert f"Change edition #{edition_id}" in loaded.text
    send = f"/admin/editions/{edition_id}/send"
    builder.client.post(send, data={"csrf_token": builder.token, "sure": "yes"})
    late = builder.post(
        newsletter="daily",
        do="schedule",
        confirmed="1",
        edition=str(edition_id),
        send_at="2099-06-02T09:00",
        article=str(builder.ids[1]),
        subject="Too late",
    )
    assert late.status_code == 409
    assert f"Edition {edition_id} is sending: only a scheduled edition can be changed." in (
        html.unescape(late.text)
    )
    page = builder.client.get(f"/admin/editions/new?edition={edition_id}")
    assert f"Edition {edition_id} is sending: only a scheduled edition can be changed." in page.text


def test_a_tests_unsubscribe_page_changes_nothing_and_needs_no_sign_in(builder: Builder) -> None:
    for method in ("GET", "POST"):
        answer = httpx.request(method, builder.base + TEST_UNSUBSCRIBE_PATH)
        assert answer.status_code == 200, method
        assert "This was a test: nobody was unsubscribed." in answer.text


def test_an_edition_being_changed_always_lists_its_own_articles(builder: Builder) -> None:
    scheduled = builder.confirmed(
        newsletter="daily",
        do="schedule",
        send_at="2099-06-01T09:00",
        article=str(builder.ids[0]),
    )
    edition_id = int(scheduled.headers["location"].rsplit("/", 1)[1])
    page = builder.client.get(f"/admin/editions/new?edition={edition_id}&q=no+such+title")
    assert f'value="{builder.ids[0]}" id="article-{builder.ids[0]}" checked' in page.text
    assert f'id="article-{builder.ids[1]}"' not in page.text  # the search still filters


def test_send_now_on_a_scheduled_editions_page_asks_first(builder: Builder) -> None:
    scheduled = builder.confirmed(
        newsletter="daily",
        do="schedule",
        send_at="2099-06-01T09:00",
        article=str(builder.ids[0]),
        subject="Later",
    )
    edition_id = int(scheduled.headers["location"].rsplit("/", 1)[1])
    send = f"/admin/editions/{edition_id}/send"
    asked = builder.client.post(send, data={"csrf_token": builder.token})
    assert asked.status_code == 200
    assert f"Send edition #{edition_id} now?" in asked.text
    assert "Yes, send to 2 readers" in asked.text and "Later" in asked.text
    assert "Asia/Tbilisi (" in asked.text
    with builder.db.session() as session:
        assert session.get_one(Edition, edition_id).status == EditionStatus.scheduled
    pressed = form_to(asked.text, send).posted()
    assert pressed["sure"] == "yes"
    sent = builder.client.post(send, data=pressed)
    assert sent.status_code == 303
    with builder.db.session() as session:
        assert session.get_one(Edition, edition_id).status == EditionStatus.sending
    again = builder.client.post(send, data=pressed)  # the back button, a second tab
    assert again.status_code in (400, 409, 422), again.status_code
    assert "it cannot be sent" in html.unescape(again.text)
