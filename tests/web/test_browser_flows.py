"""The main flows, clicked through in Chromium: a reader signs up, confirms, sets preferences,
leaves and comes back; an admin signs in, imports a CSV, builds and sends a one-off edition
and watches it reach 100%."""

import asyncio
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.builders import articles, newsletter
from tests.web.browser import screenshots
from tests.web.site import Site, site_with_mail
from tidings.access.accounts import create_user
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import UserRole
from tidings.deliver.runner import run_worker


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    newsletter(db)
    articles(db, "daily", 4, datetime.now(UTC) - timedelta(hours=3))
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
    # The pages work under their Content-Security-Policy: nothing of ours was blocked.
    assert not [text for text in console if "Content Security Policy" in text], console


def _link_in_last_mail(site: Site, pattern: str) -> str:
    text = site.wait_for_mail(1)[-1].message.get_body(("plain",)).get_content()
    found = re.search(pattern, text)
    assert found, text
    return site.base + found.group(1)


def test_reader_signs_up_confirms_sets_preferences_leaves_and_undoes(
    site: Site, page: Page, db_name: str
) -> None:
    page.goto(f"{site.base}/subscribe/daily")
    expect(page).to_have_title("Subscribe to The Daily Messenger")
    screenshots(page, f"signup-{db_name}")
    page.get_by_label("Email address").fill("nino@example.ge")
    page.get_by_label("Name").fill("Nino Beridze")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    confirm = _link_in_last_mail(site, r"http://127\.0\.0\.1:8000(/confirm/\S+)")
    page.goto(confirm)
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
    page.get_by_role("link", name="Choose sections and other preferences").click()
    screenshots(page, f"preferences-{db_name}")
    page.get_by_label("Politics").check()
    page.get_by_label("Your time zone").fill("Asia/Tbilisi")
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")
    expect(page.get_by_label("Politics")).to_be_checked()
    page.get_by_role("link", name="Unsubscribe from The Daily Messenger").click()
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    screenshots(page, f"unsubscribed-{db_name}")
    page.get_by_role("button", name="Undo: keep my subscription").click()
    expect(page.get_by_role("heading", name="Welcome back")).to_be_visible()


def _drain_in_background(site: Site) -> threading.Thread:
    def work() -> None:
        asyncio.run(run_worker(site.db, site.settings, drain=True, stop=asyncio.Event()))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_admin_imports_builds_sends_and_watches_progress(
    site: Site, page: Page, tmp_path: Path, db_name: str
) -> None:
    _, one_time = create_user(site.db, "admin@messenger.example.ge", UserRole.admin)
    page.goto(f"{site.base}/admin")
    screenshots(page, f"login-{db_name}")
    page.get_by_label("Email").fill("admin@messenger.example.ge")
    page.get_by_label("Password").fill(one_time)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Current password").fill(one_time)
    page.get_by_label("New password", exact=False).first.fill("a-fine-long-password")
    page.get_by_label("New password again").fill("a-fine-long-password")
    page.get_by_role("button", name="Save password").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    csv_file = tmp_path / "readers.csv"
    rows = ["email,name,city"] + [f"reader{i}@example.ge,Reader {i},Tbilisi" for i in range(12)]
    csv_file.write_text("\n".join([*rows, "not-an-address,Bad,Kutaisi"]) + "\n", encoding="utf-8")
    page.goto(f"{site.base}/admin/subscribers/import")
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_label("make them active at once", exact=False).check()
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.get_by_role("cell", name="reader0@example.ge")).to_be_visible()
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("heading", name="Import finished")).to_be_visible()
    expect(page.get_by_text("line 14:", exact=False)).to_be_visible()
    screenshots(page, f"import-{db_name}")

    page.goto(f"{site.base}/admin")
    screenshots(page, f"dashboard-{db_name}")
    page.goto(f"{site.base}/admin/subscribers?newsletter=daily")
    screenshots(page, f"subscribers-{db_name}")
    expect(page.get_by_role("link", name="reader11@example.ge")).to_be_visible()
    page.goto(f"{site.base}/admin/newsletters/daily")
    screenshots(page, f"newsletter-{db_name}")
    page.goto(f"{site.base}/admin/access")
    screenshots(page, f"access-{db_name}")

    page.goto(f"{site.base}/admin/editions/new?newsletter=daily")
    for story, position in (("Story 2", "2"), ("Story 0", "1")):
        title = f"{story}: Panjikidze meets envoys"
        page.get_by_role("checkbox", name=title).check()
        page.get_by_role("spinbutton", name=f"Order of {title}").fill(position)
    page.get_by_label("Subject").fill("Evening extra: envoys in Tbilisi")
    page.get_by_label("Introduction").fill("Two stories *worth* your evening.")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("2 article(s)", exact=False)).to_be_visible()
    screenshots(page, f"builder-{db_name}")
    # The builder scrolled down to its preview, and the screenshots resized the page: back
    # to the top, so no scroll adjustment of the resize moves the button from under a click.
    page.evaluate("window.scrollTo(0, 0)")
    page.get_by_role("button", name="Send now to every subscriber").click()
    page.get_by_role("button", name="Yes, send to 12 readers").click()
    expect(page.get_by_role("heading", name=re.compile(r"Edition #\d+"))).to_be_visible()
    expect(page.locator("#total")).to_have_text("12")
    worker = _drain_in_background(site)
    expect(page.locator("#percent")).to_have_text("100", timeout=30_000)
    expect(page.locator("#status")).to_have_text("sent", timeout=30_000)
    screenshots(page, f"edition-{db_name}")
    worker.join(timeout=30)
    assert sorted(site.smtp.recipients()) == sorted(f"reader{i}@example.ge" for i in range(12))
    subjects = {c.message["Subject"] for c in site.smtp.caught}
    assert subjects == {"Evening extra: envoys in Tbilisi"}
