"""The way back's console pages in Chromium: the sender-health panel, an edition's bounces and
a subscriber's history render at desktop and phone width without a horizontal scroll bar,
pass axe, and the Undo button works under the Content-Security-Policy."""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.reports.feedback_rows import OTHER, Seeded, seed, suppressed_with_history
from tests.web.browser import WIDTHS, screenshots
from tests.web.console import PASSWORD, make_user
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, InboundMessage, UserRole

#: Readers at domains with long names and a diagnostic line with no space to break at: what
#: would push a table past a phone's width if the page let it.
LONG = "x" * 120


@pytest.fixture
def signed_in(browser: Browser, db: Database, settings: Settings) -> Iterator[tuple[Page, str]]:
    email = make_user(db, UserRole.admin)
    with web_server(settings, db) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(f"{base}/admin/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        yield page, base
        context.close()
    assert not [text for text in console if "Content Security Policy" in text], console


def _no_sideways_scroll(page: Page, url: str) -> None:
    for label, pixels in WIDTHS.items():
        page.set_viewport_size({"width": pixels, "height": 900})
        page.goto(url)
        widths = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], (url, label, widths)
    page.set_viewport_size({"width": 1280, "height": 900})


def _long_lines(db: Database, seeded: Seeded) -> None:
    """A diagnostic and a reply without spaces, on rows both pages show."""
    with db.session() as session:
        dato = session.get(Delivery, seeded.deliveries["dato"])
        assert dato is not None
        dato.last_reply = f"5.7.1 {LONG}"
        for message in session.query(InboundMessage).filter(InboundMessage.diagnostic.is_not(None)):
            message.diagnostic = f"{message.diagnostic} {LONG}"
        session.commit()


def test_pages_fit_desktop_and_phone_and_undo_works(
    signed_in: tuple[Page, str], db: Database, db_name: str
) -> None:
    page, base = signed_in
    seeded = seed(db)
    suppressed_with_history(db, seeded, "lela")
    _long_lines(db, seeded)

    page.goto(f"{base}/admin/editions/{seeded.edition_id}")
    page.get_by_role("link", name="Bounces and complaints (9)").click()
    expect(page.get_by_role("heading", name="Bounces and complaints")).to_be_visible()
    expect(page.get_by_role("link", name=f"lela@{OTHER}")).to_be_visible()
    screenshots(page, f"edition-bounces-{db_name}")
    _no_sideways_scroll(page, page.url)

    page.get_by_role("link", name="Sender health").first.click()
    expect(page.get_by_role("rowheader", name="mail.example.com")).to_be_visible()
    screenshots(page, f"sender-health-{db_name}")
    _no_sideways_scroll(page, page.url)

    page.goto(f"{base}/admin/subscribers/{seeded.subscribers['lela']}")
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    screenshots(page, f"subscriber-history-{db_name}")
    _no_sideways_scroll(page, page.url)
    page.get_by_role("button", name="Undo suppressed", exact=False).click()
    expect(page.get_by_text(f"Removed the suppression of lela@{OTHER}")).to_be_visible()
    page.get_by_role("link", name="Back").click()
    expect(page.get_by_text("undone", exact=False).first).to_be_visible()
    expect(page.get_by_role("button", name="Undo suppressed", exact=False)).to_have_count(0)
