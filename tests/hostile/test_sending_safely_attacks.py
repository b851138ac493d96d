"""Hostile checks of "sending safely" (the builder's confirmation, test sends, changing a
scheduled edition) over real HTTP on both databases."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import httpx
import pytest
from sqlalchemy import func, select

from tests.builders import articles, newsletter, subscribers
from tests.web.console import csrf, make_user, sign_in
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, Edition, EditionArticle, UserRole
from tidings.web.admin.builder import CHANGED_SINCE_CONFIRMED, USED_CONFIRMATION

ACTION = "/admin/editions/new"


class _ConfirmForm(HTMLParser):
    """Every hidden field of the form posting to the builder, repeated names kept (the
    article list), and the confirm button's action, as a browser would send them."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self.inside = False
        self.action = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = values.get("action") == ACTION and values.get("method") == "post"
        elif self.inside and tag == "input" and values.get("type") == "hidden":
            self.fields.append((values["name"], values.get("value", "")))
        elif self.inside and tag == "button" and values.get("id") == "confirm":
            self.action = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def confirm_fields(page: str) -> list[tuple[str, str]]:
    """What clicking the confirmation page's "Yes" button posts."""
    parser = _ConfirmForm()
    parser.feed(page)
    assert parser.action, "no confirmation button"
    return [*parser.fields, ("do", parser.action)]


@dataclass
class Console:
    client: httpx.Client
    token: str
    db: Database
    ids: list[int]

    def post(self, fields: list[tuple[str, str]]) -> httpx.Response:
        data: dict[str, list[str]] = {}
        for name, value in fields:
            data.setdefault(name, []).append(value)
        return self.client.post(ACTION, data=data)

    def ask(self, **data: str | list[str]) -> httpx.Response:
        return self.client.post(ACTION, data={"csrf_token": self.token, **data})

    def count(self, model: type[Edition] | type[Delivery]) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

    def edition_articles(self) -> list[list[int]]:
        with self.db.session() as session:
            editions = session.scalars(select(Edition.id).order_by(Edition.id)).all()
            return [
                list(
                    session.scalars(
                        select(EditionArticle.article_id)
                        .where(EditionArticle.edition_id == e)
                        .order_by(EditionArticle.position)
                    )
                )
                for e in editions
            ]


@pytest.fixture
def console(db: Database, settings: Settings) -> Iterator[Console]:
    newsletter(db)
    newsletter(db, "weekly")
    ids = articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=2))
    articles(db, "weekly", 1, datetime.now(UTC) - timedelta(hours=2))
    subscribers(db, "daily", 3)
    with web_server(settings, db) as base:
        client = sign_in(base, make_user(db, UserRole.editor))
        yield Console(client, csrf(client), db, ids)


def test_a_confirmation_page_submitted_twice_sends_once(console: Console) -> None:
    """A double click, the back button and a resubmit, or a second tab on the same page:
    the confirmed form once sent a second edition to every reader each time."""
    asked = console.ask(newsletter="daily", do="send", article=[str(i) for i in console.ids])
    assert "Yes, send to 3 readers" in asked.text
    yes = confirm_fields(asked.text)
    first = console.post(yes)
    assert first.status_code == 303
    again = console.post(yes)
    assert again.status_code == 409
    assert USED_CONFIRMATION in again.text
    assert console.count(Edition) == 1
    assert console.count(Delivery) == 3


def test_a_confirmed_schedule_submitted_twice_schedules_once(console: Console) -> None:
    asked = console.ask(
        newsletter="daily", do="schedule", send_at="2099-06-01T09:00", article=str(console.ids[0])
    )
    yes = confirm_fields(asked.text)
    assert console.post(yes).status_code == 303
    assert console.post(yes).status_code == 409
    assert console.count(Edition) == 1


def test_what_is_sent_is_what_was_confirmed_when_no_article_is_ticked(console: Console) -> None:
    """With nothing ticked the new articles are chosen automatically: once at the
    confirmation and again when sending, so an article polled in between went out
    unconfirmed (and its section could bring readers the count did not show)."""
    asked = console.ask(newsletter="daily", do="send")
    assert "Yes, send to 3 readers" in asked.text
    yes = confirm_fields(asked.text)
    late = articles(console.db, "daily", 1, datetime.now(UTC) - timedelta(minutes=5))
    assert console.post(yes).status_code == 303
    assert [sorted(ids) for ids in console.edition_articles()] == [console.ids]
    assert late[0] not in console.edition_articles()[0]


def test_a_confirmation_changed_after_it_was_shown_asks_again(console: Console) -> None:
    """Hidden fields altered after the page was shown (another newsletter, other articles, a
    subject): nothing is sent; the confirmation is shown again for what was posted."""
    asked = console.ask(newsletter="daily", do="send", article=str(console.ids[0]))
    yes = confirm_fields(asked.text)
    changed = [(k, "Not confirmed" if k == "subject" else v) for k, v in yes]
    again = console.post(changed)
    assert again.status_code == 200 and CHANGED_SINCE_CONFIRMED in again.text
    assert "Not confirmed" in again.text
    extra = [*yes, ("article", str(console.ids[1]))]
    assert CHANGED_SINCE_CONFIRMED in console.post(extra).text
    assert console.count(Edition) == 0
    # The page shown again confirms what it shows, once.
    assert console.post(confirm_fields(again.text)).status_code == 303
    assert console.count(Edition) == 1
