"""Subscribers in Chromium on both databases: the list's status column (active, pending,
bounced) and its filter, the count of readers waiting for a confirmation; the detail page's
actions one by one: edit, unsubscribe and resubscribe, resend the confirmation (caught by a
real SMTP server), suppress and unsuppress, and erase after a confirmation page, with a
message afterwards. Every page is checked with axe, saved at 1280 and 375 px, and fits 375 px
(the suppression list too)."""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.builders import newsletter, subscribers
from tests.web.browser import screenshots
from tests.web.console import PASSWORD, make_user
from tests.web.site import Site, site_with_mail
from tidings.audience.service import add_subscriber
from tidings.audience.suppressions import suppress
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import SuppressionReason, UserRole

ADMIN = "admin@messenger.example.ge"
NINO = "nino.abashidze@example.ge"


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    newsletter(db)
    subscribers(db, "daily", 2)  # reader0, reader1: active
    add_subscriber(db, "daily", NINO, "Nino", confirmed=False, source="api")  # pending
    suppress(db, "reader1@example.ge", "550 5.1.1 no such user", SuppressionReason.hard_bounce)
    suppress(db, "gone-for-a-very-long-time@some-long-domain.example.ge", "an old bounce")
    make_user(db, UserRole.admin)
    with site_with_mail(db, settings) as started:
        yield started


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    console: list[str] = []
    opened.on("console", lambda message: console.append(message.text))
    yield opened
    context.close()
    assert not [text for text in console if "Content Security Policy" in text], console


def _fits_a_phone(page: Page) -> None:
    page.set_viewport_size({"width": 375, "height": 900})
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert width <= 375, f"{page.url} is {width} px wide at 375"


def _check(page: Page, name: str) -> None:
    screenshots(page, name)
    _fits_a_phone(page)


def _status(page: Page) -> str:
    return page.locator("#subscriptions tbody tr").first.locator("td").nth(1).inner_text()


def test_the_list_shows_and_filters_each_status(site: Site, page: Page, db_name: str) -> None:
    page.goto(f"{site.base}/admin/login")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{site.base}/admin/subscribers")
    rows = page.locator("#subscribers tbody tr")
    expect(rows).to_have_count(3)
    texts = [row.inner_text() for row in rows.all()]
    assert "The Daily Messenger: active" in texts[0]
    assert "The Daily Messenger: bounced" in texts[1]  # reader1's address bounced
    assert "The Daily Messenger: pending" in texts[2]
    expect(page.locator("#waiting")).to_contain_text("1 pending subscriber has not been sent")
    _check(page, f"subscribers-list-{db_name}")

    page.get_by_label("Status").select_option("pending")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(NINO)
    page.get_by_label("Status").select_option("active")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("reader0@example.ge")
    _check(page, f"subscribers-list-active-{db_name}")

    page.goto(f"{site.base}/admin/suppressions")
    expect(page.locator("#suppressions tbody tr")).to_have_count(2)
    _check(page, f"suppressions-list-{db_name}")


def test_the_detail_page_actions(site: Site, page: Page, db_name: str) -> None:
    page.goto(f"{site.base}/admin/login")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{site.base}/admin/subscribers?q=nino")
    page.get_by_role("link", name=NINO).click()
    expect(page.get_by_role("heading", name=NINO)).to_be_visible()
    assert _status(page).startswith("pending")
    _check(page, f"subscriber-detail-{db_name}")

    # Edit.
    page.get_by_label("Name", exact=True).fill("Nino Abashidze")
    page.get_by_label("Time zone").fill("Asia/Tbilisi")
    page.get_by_label("Locale").fill("ka-GE")
    page.get_by_label("Attributes, one name=value a line").fill("city=Kutaisi\nsection=politics")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("The changes were saved.")
    expect(page.get_by_text("Nino Abashidze · Asia/Tbilisi · ka-GE")).to_be_visible()
    expect(page.get_by_text("city: Kutaisi · section: politics")).to_be_visible()

    # Resend the confirmation: a real mail to Nino.
    page.get_by_role("button", name="Resend the confirmation for The Daily Messenger").click()
    expect(page.get_by_role("status")).to_have_text("A confirmation mail is on its way.")
    (caught,) = site.wait_for_mail(1)
    assert caught.rcpt_tos == [NINO]
    body = caught.message.get_body(("plain",))
    assert body is not None and "/confirm/" in body.get_content()
    page.get_by_role("button", name="Resend the confirmation for The Daily Messenger").click()
    expect(page.get_by_role("status")).to_contain_text("less than ten minutes ago")

    # Unsubscribe, then resubscribe: pending again (she never confirmed).
    page.get_by_role("button", name="Unsubscribe from The Daily Messenger").click()
    expect(page.get_by_role("status")).to_have_text("The subscription was ended.")
    assert _status(page).startswith("unsubscribed")
    page.get_by_role("button", name="Resubscribe to The Daily Messenger").click()
    expect(page.get_by_role("status")).to_contain_text("starts only when the reader confirms")
    assert _status(page).startswith("pending")

    # Suppress and unsuppress.
    page.get_by_label("Why (optional)").fill("asked by phone")
    page.get_by_role("button", name="Suppress this address").click()
    expect(page.get_by_role("status")).to_contain_text("is on the suppression list")
    assert _status(page).startswith("suppressed")
    _check(page, f"subscriber-detail-suppressed-{db_name}")
    page.get_by_role("button", name="Take it off the suppression list").click()
    expect(page.get_by_role("status")).to_have_text(
        "The address was taken off the suppression list."
    )
    assert _status(page).startswith("pending")

    # The history has every step, each with its source.
    history = page.locator("#history tbody tr")
    kinds = [row.locator("td").nth(1).inner_text().split()[0] for row in history.all()]
    assert kinds == [
        "unsuppressed",
        "suppressed",
        "resubscribed",
        "unsubscribed",
        "confirm_mailed",
        "edited",
        "added",
    ]
    sources = [row.locator("td").nth(2).inner_text() for row in history.all()]
    assert sources == ["console"] * 6 + ["api"]

    # Erase, after a page that asks.
    page.get_by_role("link", name="Erase this person…").click()
    expect(page.get_by_role("heading", name=f"Erase {NINO}?")).to_be_visible()
    _check(page, f"subscriber-erase-{db_name}")
    page.get_by_label(f"I want to erase {NINO} for good").check()
    page.get_by_role("button", name="Erase for good").click()
    expect(page.get_by_role("status")).to_contain_text("The subscriber was erased")
    expect(page.get_by_text(NINO)).to_have_count(0)
