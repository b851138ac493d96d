"""The edition builder in Chromium on both databases, sending safely: order by dragging a
row, preview (the page lands on it, the Markdown intro's list and link kept in the text
part), a test send caught by the real SMTP server ("[Test]", the banner, its own
Message-ID, an unsubscribe link that unsubscribes nobody), send now through the
confirmation page (subject, 3 readers of 5, zoned time), and a scheduled edition changed.
Each page is checked with axe, saved at 1280 and 375 px, and fits 375 px."""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from tests.builders import articles, newsletter, subscribers
from tests.smtpserver import RecordingHandler, smtp_server
from tests.web.browser import screenshots
from tests.web.console import PASSWORD, make_user
from tests.webserver import web_server
from tidings.audience.service import add_subscriber
from tidings.audience.suppressions import suppress
from tidings.compose.oneoff import scheduled_draft, send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    Edition,
    EditionStatus,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    UserRole,
)
from tidings.mail.edition import TEST_BANNER_TEXT

EDITOR = "editor@messenger.example.ge"
INTRO = (
    "Two stories worth your evening:\n\n"
    "- Panjikidze meets envoys\n"
    "- The [budget vote](https://messenger.example.ge/budget) tonight\n"
)


@dataclass
class Site:
    base: str
    db: Database
    smtp: RecordingHandler
    #: Article ids: Story 0 (sent before), Story 1, Story 2, Story 3 (the newest).
    ids: list[int]
    earlier_edition: int


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    """Five readers of the Daily Messenger: three active, one active but suppressed, one
    pending; Story 0 went out in an earlier edition."""
    newsletter(db)
    ids = articles(db, "daily", 4, datetime.now(UTC) - timedelta(hours=3))
    subscribers(db, "daily", 4)
    add_subscriber(db, "daily", "pending@example.ge", "Pending", confirmed=False, source="test")
    earlier = send_one_off(db, settings, "daily", OneOff(article_ids=[ids[0]]))
    suppress(db, "reader3@example.ge", "bounced")
    make_user(db, UserRole.editor, EDITOR)
    with smtp_server() as (handler, port):
        with_smtp = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        with web_server(with_smtp, db) as base:
            yield Site(base, db, handler, ids, earlier.edition_id)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def _sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/admin/login")
    page.get_by_label("Email").fill(EDITOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(f"{base}/admin/login")


def _fits_a_phone(page: Page) -> None:
    page.set_viewport_size({"width": 375, "height": 900})
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert width <= 375, f"{page.url} is {width} px wide at 375"


def _title(index: int) -> str:
    return f"Story {index}: Panjikidze meets envoys"


def _row(page: Page, article_id: int) -> str:
    return f"#articles tr[data-id='{article_id}']"


def _active(db: Database, email: str) -> bool:
    with db.session() as session:
        status = session.scalar(
            select(Subscription.status)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscriber.email == email)
        )
    return status == SubscriptionStatus.active


def test_builder_orders_previews_tests_and_sends_after_confirming(
    site: Site, page: Page, db_name: str
) -> None:
    story0, story1, story2, _ = site.ids
    _sign_in(page, site.base)
    page.goto(f"{site.base}/admin/editions/new?newsletter=daily")
    expect(page.get_by_role("columnheader", name="Published (Asia/Tbilisi)")).to_be_visible()
    sent_mark = page.locator(_row(page, story0)).locator(".sent")
    expect(sent_mark).to_have_text(
        re.compile(rf"^Sent in edition {site.earlier_edition} on \d{{4}}-\d{{2}}-\d{{2}}$")
    )
    assert page.locator(_row(page, story1)).locator(".sent").count() == 0
    screenshots(page, f"builder-empty-{db_name}")
    _fits_a_phone(page)

    # Newest first: Story 3, 2, 1, 0. Drag Story 0 above Story 2, tick Story 0 and Story 2.
    page.locator(_row(page, story0)).drag_to(page.locator(_row(page, story2)))
    order = page.locator("#articles tr[data-id]").evaluate_all(
        "rows => rows.map(r => [r.dataset.id, r.querySelector('input.pos').value])"
    )
    assert [int(i) for i, _ in order][:3] == [site.ids[3], story0, story2], order
    assert [p for _, p in order] == ["1", "2", "3", "4"]  # the number fields follow
    page.get_by_role("checkbox", name=_title(0)).check()
    page.get_by_role("checkbox", name=_title(2)).check()
    page.get_by_label("Subject").fill("Evening extra: envoys in Tbilisi")
    page.get_by_label("Introduction").fill(INTRO)
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview")).to_be_in_viewport()
    assert page.evaluate("window.scrollY") > 0  # the page went down to it
    expect(page.get_by_role("link", name="The preview is below the form.")).to_have_attribute(
        "href", "#preview"
    )
    shown = page.locator("#preview-text").inner_text()
    assert "- Panjikidze meets envoys\n- The budget vote <https://messenger.example.ge/budget>" in (
        shown
    )
    assert shown.index(_title(0)) < shown.index(_title(2))  # the dragged order
    screenshots(page, f"builder-preview-{db_name}")
    _fits_a_phone(page)
    page.evaluate("window.scrollTo(0, 0)")  # resized while down at the preview: steady

    # A test, personalised for a real reader, to two editors: each its own message.
    page.get_by_label("Send a test to").fill("ed@messenger.example.ge, desk@messenger.example.ge")
    page.get_by_label("Personalise it for").fill("reader1@example.ge")
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#result")).to_contain_text("ed@messenger.example.ge: sent")
    expect(page.locator("#result")).to_contain_text("desk@messenger.example.ge: sent")
    tests = [caught.message for caught in site.smtp.caught]
    assert sorted(site.smtp.recipients()) == [
        "desk@messenger.example.ge",
        "ed@messenger.example.ge",
    ]
    ids = {m["Message-ID"] for m in tests}
    assert len(ids) == 2 and all(i.endswith("@messenger.example.ge>") for i in ids)
    for message in tests:
        assert message["Subject"] == "[Test] Evening extra: envoys in Tbilisi"
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        assert text.get_content().startswith("*** TEST *** " + TEST_BANNER_TEXT)
        assert TEST_BANNER_TEXT in html.get_content()
        assert "Hello Reader," in text.get_content()
    link = re.search(r"<(https?://[^>]+)>", tests[0]["List-Unsubscribe"])
    assert link is not None
    assert "/u/" not in link.group(1)  # no reader's signed link
    unsubscribe = re.sub(r"^https?://[^/]+", site.base, link.group(1))  # BASE_URL: this server
    one_click = httpx.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert "This was a test: nobody was unsubscribed." in one_click.text

    # Send now: the confirmation page says what will happen; nothing is sent before.
    page.get_by_role("button", name="Send now to every subscriber").click()
    expect(page.get_by_role("heading", name="Send this edition now?")).to_be_visible()
    expect(page.locator("#confirm-subject")).to_have_text("Evening extra: envoys in Tbilisi")
    expect(page.locator("#confirm-count")).to_have_text("3")  # 5: one suppressed, one pending
    expect(page.locator("#confirm-newsletter")).to_have_text("The Daily Messenger")
    expect(page.locator("#confirm-time")).to_have_text(
        re.compile(
            r"^now: \d{4}-\d\d-\d\d \d\d:\d\d Asia/Tbilisi \((\d{4}-\d\d-\d\d )?\d\d:\d\d UTC\)$"
        )
    )
    with site.db.session() as session:
        assert session.scalars(select(Edition.id)).all() == [site.earlier_edition]
    screenshots(page, f"builder-confirm-{db_name}")
    _fits_a_phone(page)
    page.get_by_role("button", name="Yes, send to 3 readers").click()
    expect(page.get_by_role("heading", name=re.compile(r"Edition #\d+"))).to_be_visible()
    edition_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#total")).to_have_text("3")
    sent = scheduled_draft(site.db, edition_id)
    assert sent.article_ids == [story0, story2] and sent.subject == (
        "Evening extra: envoys in Tbilisi"
    )
    assert sent.status in (EditionStatus.sending, EditionStatus.sent)

    # The test's unsubscribe link, followed by the reader it was personalised for.
    page.goto(unsubscribe)
    expect(page.get_by_text("This was a test: nobody was unsubscribed.")).to_be_visible()
    screenshots(page, f"test-unsubscribe-{db_name}")
    _fits_a_phone(page)
    assert _active(site.db, "reader1@example.ge")


def test_a_scheduled_edition_is_changed_in_the_builder(
    site: Site, page: Page, db_name: str
) -> None:
    _sign_in(page, site.base)
    page.goto(f"{site.base}/admin/editions/new?newsletter=daily")
    page.get_by_role("checkbox", name=_title(1)).check()
    page.get_by_label("Subject").fill("Morning briefing")
    page.get_by_label("Or schedule it for").fill("2099-01-01T08:00")
    page.get_by_role("button", name="Schedule", exact=True).click()
    expect(page.locator("#confirm-time")).to_have_text("2099-01-01 08:00 Asia/Tbilisi (04:00 UTC)")
    expect(page.locator("#confirm-count")).to_have_text("3")
    page.get_by_role("button", name="Yes, schedule").click()
    expect(page.locator("#status")).to_have_text("scheduled")
    edition_id = int(page.url.rsplit("/", 1)[1])

    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page.get_by_role("heading", name=f"Change edition #{edition_id}")).to_be_visible()
    expect(page.get_by_label("Subject")).to_have_value("Morning briefing")
    expect(page.get_by_label("Send it at")).to_have_value("2099-01-01T08:00")
    expect(page.get_by_role("checkbox", name=_title(1))).to_be_checked()
    assert page.get_by_role("button", name="Send now to every subscriber").count() == 0
    screenshots(page, f"builder-edit-{db_name}")
    _fits_a_phone(page)
    page.get_by_role("checkbox", name=_title(2)).check()
    page.get_by_label("Subject").fill("Morning briefing, revised")
    page.get_by_label("Send it at").fill("2099-01-02T09:30")
    page.get_by_role("button", name="Save and schedule").click()
    expect(page.locator("#confirm-time")).to_have_text("2099-01-02 09:30 Asia/Tbilisi (05:30 UTC)")
    page.get_by_role("button", name="Yes, save and schedule").click()
    expect(page.locator("#status")).to_have_text("scheduled")
    assert page.url.endswith(f"/admin/editions/{edition_id}")
    draft = scheduled_draft(site.db, edition_id)
    assert draft.subject == "Morning briefing, revised"
    assert draft.scheduled_for == datetime(2099, 1, 2, 5, 30, tzinfo=UTC)
    assert sorted(draft.article_ids) == sorted([site.ids[1], site.ids[2]])
    with site.db.session() as session:
        assert len(session.scalars(select(Edition.id)).all()) == 2  # changed, not added

    # Once it has started, the builder refuses to load it, with a sentence.
    page.get_by_role("button", name="Send now").click()
    # The edition page asks first too, with the readers it will go to.
    expect(page.locator("#confirm")).to_have_text("Yes, send to 3 readers")
    page.locator("#confirm").click()
    expect(page.locator("#status")).not_to_have_text("scheduled")
    page.goto(f"{site.base}/admin/editions/new?edition={edition_id}")
    expect(
        page.get_by_text(
            f"Edition {edition_id} is sending: only a scheduled edition can be changed."
        )
    ).to_be_visible()
