"""People, clicked through in Chromium on both databases: "Forgot your password?" from the
sign-in page to the mail (caught by a real SMTP server) to a new password and the dashboard,
and the access page refusing to disable the last admin beside their row. Each page is checked
with axe and saved at 1280 and 375 px."""

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.builders import newsletter
from tests.web.browser import screenshots
from tests.web.console import PASSWORD, make_user
from tests.web.site import Site, site_with_mail
from tidings.access.accounts import user_id_by_email
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import UserRole

EDITOR = "editor@messenger.example.ge"
ADMIN = "admin@messenger.example.ge"


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    newsletter(db)
    make_user(db, UserRole.admin)
    make_user(db, UserRole.editor)
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


def _no_sideways_scroll(page: Page) -> None:
    page.set_viewport_size({"width": 375, "height": 900})
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert width <= 375, f"{page.url} is {width} px wide at 375"


def test_forgot_password_end_to_end(site: Site, page: Page, db_name: str) -> None:
    page.goto(f"{site.base}/admin/login")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    screenshots(page, f"forgot-{db_name}")
    page.get_by_label("Email").fill(EDITOR)
    page.get_by_role("button", name="Send me a link").click()
    expect(page.get_by_role("status")).to_contain_text("is on its way")

    mail = site.wait_for_mail(1)[0].message
    assert mail["To"] == EDITOR
    body = mail.get_body(("plain",))
    assert body is not None
    link = re.search(r"http://\S+(/admin/reset/\S+)", body.get_content())
    assert link
    page.goto(site.base + link.group(1))
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    expect(page.get_by_text(EDITOR)).to_be_visible()
    screenshots(page, f"reset-{db_name}")
    _no_sideways_scroll(page)

    page.get_by_label("New password", exact=False).first.fill("aaaaaaaaaaaa")
    page.get_by_label("New password again").fill("aaaaaaaaaaaa")
    page.get_by_role("button", name="Save password and sign in").click()
    expect(page.get_by_role("alert")).to_contain_text('Repeats like "aaa" are easy to guess.')
    screenshots(page, f"reset-refused-{db_name}")

    page.get_by_label("New password", exact=False).first.fill("a-fresh-and-private-phrase")
    page.get_by_label("New password again").fill("a-fresh-and-private-phrase")
    page.get_by_role("button", name="Save password and sign in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_text(f"{EDITOR} (editor)")).to_be_visible()

    # The link was used: it says so, with the way to a new one.
    page.goto(site.base + link.group(1))
    expect(page.get_by_role("alert")).to_contain_text("expired or was used already")


def test_the_access_page_keeps_the_last_admin(site: Site, page: Page, db_name: str) -> None:
    page.goto(f"{site.base}/admin/login")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{site.base}/admin/access")
    screenshots(page, f"access-people-{db_name}")
    _no_sideways_scroll(page)
    page.get_by_role("button", name=f"Disable {ADMIN}").click()
    row = page.locator(f"#user-{user_id_by_email(site.db, ADMIN)}")
    expect(row.get_by_role("alert")).to_contain_text("is the last admin and cannot be disabled")
    screenshots(page, f"access-refused-{db_name}")
    page.get_by_role("button", name=f"Disable {EDITOR}").click()
    editor_row = page.locator(f"#user-{user_id_by_email(site.db, EDITOR)}")
    expect(editor_row).to_contain_text("disabled")
    expect(editor_row.get_by_role("button", name=f"Enable {EDITOR}")).to_be_visible()
