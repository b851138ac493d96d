"""Hostile checks of "sending safely" (the builder's confirmation, test sends, changing a
scheduled edition) over real HTTP on both databases."""

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from tests.builders import articles, newsletter, subscribers
from tests.smtpserver import RecordingHandler, smtp_server
from tests.web.console import csrf, make_user, sign_in
from tests.web.forms import form_to
from tests.webserver import web_server
from tidings.access.apitokens import create_token
from tidings.audience.service import add_subscriber
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Delivery,
    Edition,
    EditionArticle,
    Subscription,
    SubscriptionStatus,
    UserRole,
)
from tidings.mail.edition import TEST_UNSUBSCRIBE_PATH
from tidings.web.admin.builder import (
    CHANGED_SINCE_CONFIRMED,
    TEST_MAILS,
    TOO_MANY_TESTS,
    USED_CONFIRMATION,
)

ACTION = "/admin/editions/new"


def confirm_fields(page: str) -> list[tuple[str, str]]:
    """What clicking the confirmation page's "Yes" button posts: every hidden field, repeated
    names kept (the article list), and the button's own name and value."""
    form = form_to(page, ACTION)
    assert form.buttons, "no confirmation button"
    return [*form.fields, form.buttons[0]]


@dataclass
class Console:
    client: httpx.Client
    token: str
    db: Database
    ids: list[int]
    base: str
    smtp: RecordingHandler
    #: An article of the other newsletter.
    weekly: int

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
    weekly = articles(db, "weekly", 1, datetime.now(UTC) - timedelta(hours=2))[0]
    subscribers(db, "daily", 3)
    add_subscriber(db, "weekly", "other@example.ge", "Other Reader", confirmed=True, source="t")
    with smtp_server() as (handler, port):
        with_smtp = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        with web_server(with_smtp, db) as base:
            client = sign_in(base, make_user(db, UserRole.editor))
            yield Console(client, csrf(client), db, ids, base, handler, weekly)


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


def test_test_messages_are_limited_per_editor(console: Console) -> None:
    """Test messages go to any typed address, DKIM-signed as the newsletter, five a click:
    without a limit the builder was a relay, click after click."""
    article = str(console.ids[0])
    per_click = 5
    for click in range(TEST_MAILS.limit // per_click):
        typed = " ".join(f"t{click}-{n}@example.org" for n in range(per_click))
        sent = console.ask(newsletter="daily", do="test", article=article, tests=typed)
        assert sent.text.count(": sent") == per_click, click
    over = console.ask(newsletter="daily", do="test", article=article, tests="last@example.org")
    assert TOO_MANY_TESTS in over.text and "last@example.org: sent" not in over.text
    assert len(console.smtp.recipients()) == TEST_MAILS.limit
    # Another editor has a limit of their own.
    other = sign_in(console.base, make_user(console.db, UserRole.admin))
    mine = other.post(
        ACTION,
        data={
            "csrf_token": csrf(other),
            "newsletter": "daily",
            "do": "test",
            "article": article,
            "tests": "admin@example.org",
        },
    )
    assert "admin@example.org: sent" in mine.text


def test_a_test_is_never_personalised_for_another_newsletters_reader(console: Console) -> None:
    """Held: naming a reader of another newsletter shows nothing of them and sends nothing."""
    sent = console.ask(
        newsletter="daily",
        do="test",
        article=str(console.ids[0]),
        tests="ed@example.org",
        test_reader="other@example.ge",
    )
    assert "other@example.ge is not subscribed to this newsletter" in sent.text
    assert "Other Reader" not in sent.text
    assert console.smtp.recipients() == []


def test_test_messages_have_their_own_message_ids_and_no_reader_token(console: Console) -> None:
    """Each test message has its own random Message-ID on the newsletter's domain (it carried
    the server's process id and clock, failed before); its
    List-Unsubscribe names the test page and the sender, never a reader's signed link."""
    console.ask(
        newsletter="daily",
        do="test",
        article=str(console.ids[0]),
        tests="a@example.org b@example.org",
        test_reader="reader0@example.ge",
    )
    messages = [caught.message for caught in console.smtp.caught]
    ids = {str(m["Message-ID"]) for m in messages}
    assert len(ids) == 2
    for message_id in ids:  # random, on the newsletter's domain: no time, no process id
        assert re.fullmatch(r"<tidings\.test\.[0-9a-f]{32}@messenger\.example\.ge>", message_id)
    for message in messages:
        assert str(message["Subject"]).startswith("[Test] ")
        unsubscribe = str(message["List-Unsubscribe"])
        assert "/test-unsubscribe" in unsubscribe and "/u/" not in unsubscribe
        assert "unsubscribe+" not in unsubscribe and "bounce" not in unsubscribe
    links = [p.strip(" <>") for p in unsubscribe.split(",") if "://" in p]
    assert len(links) == 1 and urlsplit(links[0]).path == TEST_UNSUBSCRIBE_PATH
    one_click = httpx.post(
        console.base + urlsplit(links[0]).path, data={"List-Unsubscribe": "One-Click"}
    )
    assert one_click.status_code == 200 and "nobody was unsubscribed" in one_click.text
    with console.db.session() as session:
        statuses = set(session.scalars(select(Subscription.status)))
    assert statuses == {SubscriptionStatus.active}


def test_strangers_viewers_and_forged_forms_reach_no_sending_path(console: Console) -> None:
    """Held: the builder's POST needs an editor and the form token; PATCH needs an editor's
    API token."""
    fields = {"newsletter": "daily", "do": "send", "confirmed": "1", "article": "1"}
    stranger = httpx.post(console.base + ACTION, data=fields)
    assert stranger.status_code in (303, 401, 403)
    viewer = sign_in(console.base, make_user(console.db, UserRole.viewer))
    refused = viewer.post(ACTION, data={**fields, "csrf_token": csrf(viewer)})
    assert refused.status_code == 403
    forged = console.client.post(ACTION, data=fields)  # no form token
    assert forged.status_code == 403
    assert console.count(Edition) == 0
    asked = console.ask(
        newsletter="daily", do="schedule", send_at="2099-06-01T09:00", article=str(console.ids[0])
    )
    scheduled = console.post(confirm_fields(asked.text))
    edition_id = int(scheduled.headers["location"].rsplit("/", 1)[1])
    _, secret = create_token(console.db, "viewer", UserRole.viewer, "test")
    patch = httpx.patch(
        f"{console.base}/api/v1/editions/{edition_id}",
        json={"subject": "Changed by a viewer"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert patch.status_code == 403
    anonymous = httpx.patch(
        f"{console.base}/api/v1/editions/{edition_id}", json={"subject": "Changed"}
    )
    assert anonymous.status_code == 401
    with console.db.session() as session:
        assert session.get_one(Edition, edition_id).subject != "Changed by a viewer"


def _api(console: Console) -> httpx.Client:
    _, secret = create_token(console.db, "editor", UserRole.editor, "test")
    return httpx.Client(
        base_url=f"{console.base}/api/v1", headers={"Authorization": f"Bearer {secret}"}
    )


INTRO = """\
Read [https://bank.example/login](https://evil.example/x) and [here](//elsewhere.example/p).

Write to <ed@messenger.example.ge> or see <https://messenger.example.ge/about>.

<script>alert(1)</script> [click](javascript:alert(1)) [data](data:text/html,x)
"""


def test_the_intro_text_part_shows_every_real_link_once(console: Console) -> None:
    """A link's real address is in the text part whatever its text says; a protocol-relative
    link the HTML keeps was left out of the text (failed before), and an autolink was
    written twice (failed before). Raw HTML and script URLs stay inert text (held)."""
    api = _api(console)
    found = api.post(
        "/newsletters/daily/preview",
        json={"article_ids": [console.ids[0]], "intro_markdown": INTRO},
    )
    assert found.status_code == 200, found.text
    html = found.json()["html"]
    text = " ".join(found.json()["text"].split())  # as wrapped lines read
    assert "https://bank.example/login <https://evil.example/x>" in text
    assert "here <//elsewhere.example/p>" in text
    assert "Write to ed@messenger.example.ge or see https://messenger.example.ge/about." in text
    assert "<script>" not in html and 'href="javascript' not in html and 'href="data:' not in html
    assert "&lt;script&gt;" in html


def test_patch_refuses_another_newsletters_articles_and_keeps_the_edition(
    console: Console,
) -> None:
    """Held: PATCH with an article of another newsletter changes nothing."""
    api = _api(console)
    created = api.post(
        "/editions",
        json={
            "newsletter": "daily",
            "article_ids": [console.ids[0]],
            "subject": "Morning",
            "send": "scheduled",
            "scheduled_for": "2099-01-01T08:00:00+04:00",
        },
    )
    edition_id = created.json()["id"]
    refused = api.patch(
        f"/editions/{edition_id}", json={"article_ids": [console.weekly], "subject": "Changed"}
    )
    assert refused.status_code in (404, 422), refused.text
    after = api.get(f"/editions/{edition_id}").json()
    assert after["subject"] == "Morning" and after["status"] == "scheduled"
    assert console.edition_articles() == [[console.ids[0]]]


def test_a_double_click_at_the_same_moment_sends_once(console: Console) -> None:
    """Two copies of the confirmed form in flight together (a double click): the one-time
    claim is atomic on both databases, so one edition goes out and the other is refused."""
    asked = console.ask(newsletter="daily", do="send", article=[str(i) for i in console.ids])
    yes = confirm_fields(asked.text)
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: console.post(yes).status_code, range(2)))
    assert sorted(answers) == [303, 409]
    assert console.count(Edition) == 1 and console.count(Delivery) == 3


def test_ordering_works_without_a_script_and_the_script_is_nonce_only(console: Console) -> None:
    """Held: the order numbers alone order the articles (no script needed); the page's only
    scripts carry the response's CSP nonce, and no inline handler is on the page."""
    page = console.client.get(f"{ACTION}?newsletter=daily")
    policy = page.headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", policy)
    assert nonce is not None and "unsafe-inline" not in policy.split("style-src")[0]
    scripts = re.findall(r"<script\b[^>]*>", page.text)
    assert scripts and all(f'nonce="{nonce.group(1)}"' in tag for tag in scripts)
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", page.text)
    first, second = console.ids
    asked = console.ask(
        newsletter="daily",
        do="send",
        article=[str(first), str(second)],
        **{f"pos_{first}": "2", f"pos_{second}": "1"},
    )
    assert console.post(confirm_fields(asked.text)).status_code == 303
    assert console.edition_articles() == [[second, first]]


def test_patch_racing_send_now_is_one_or_the_other(console: Console) -> None:
    """Held: a PATCH and the edition's start at the same moment either change it first
    (and the new subject and articles go out) or are refused with 409 (and the old ones
    go out); never a started edition with half its change."""
    api = _api(console)
    first, second = console.ids
    for attempt in range(4):
        created = api.post(
            "/editions",
            json={
                "newsletter": "daily",
                "article_ids": [first],
                "subject": f"Old {attempt}",
                "send": "scheduled",
                "scheduled_for": "2099-01-01T08:00:00+04:00",
            },
        )
        edition_id = created.json()["id"]

        url = f"/editions/{edition_id}"
        change = {"subject": f"New {attempt}", "article_ids": [second]}
        with ThreadPoolExecutor(max_workers=2) as pool:
            patched = pool.submit(lambda u, c: api.patch(u, json=c).status_code, url, change)
            sent = pool.submit(lambda u: api.post(f"{u}/send").status_code, url)
            assert sent.result() == 200
            status = patched.result()
        assert status in (200, 409), status
        with console.db.session() as session:
            edition = session.get_one(Edition, edition_id)
            kept = list(
                session.scalars(
                    select(EditionArticle.article_id).where(EditionArticle.edition_id == edition_id)
                )
            )
            deliveries = session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.edition_id == edition_id)
            )
        assert edition.status.value == "sending" and deliveries == 3
        if status == 200:
            assert edition.subject == f"New {attempt}" and kept == [second]
        else:
            assert edition.subject == f"Old {attempt}" and kept == [first]


def test_a_test_subject_cannot_add_headers_or_recipients(console: Console) -> None:
    """Held: a subject with line breaks and a Bcc stays one line of the [Test] subject; the
    message goes to the typed test address only."""
    console.ask(
        newsletter="daily",
        do="test",
        article=str(console.ids[0]),
        subject="Evening\r\nBcc: victim@example.org\r\n\r\nbody",
        tests="ed@example.org",
    )
    assert console.smtp.recipients() == ["ed@example.org"]
    message = console.smtp.caught[0].message
    assert message["Bcc"] is None
    assert str(message["Subject"]).startswith("[Test] Evening")
    assert "\n" not in str(message["Subject"])
